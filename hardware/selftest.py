"""`facegate hardware selftest`: prove on the board (or anywhere) that this installation works.

Checks, each timed: every model file matches its card (sha256); the detector and embedder load
through the configured backend; detect -> align -> embed runs on the self-test photos with finite
outputs; same-person scores beat different-person scores; an encrypted gallery round-trips and
identifies; and, only when asked, the relay toggles and (on a real GPIO relay) a door process killed
with SIGKILL while unlocked leaves the line low: the wiring's pull-down, not the software, locks the
door then (hardware/WIRING.md). Exit 0 only when every check passed.
"""
from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    ms: float


@dataclass
class SelfTestReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def text(self) -> str:
        lines = [f"{'PASS' if c.ok else 'FAIL'}  {c.name:<22} {c.ms:8.1f} ms  {c.detail}" for c in self.checks]
        lines.append(f"self-test {'PASSED' if self.passed else 'FAILED'} "
                     f"({sum(c.ok for c in self.checks)}/{len(self.checks)} checks)")
        return "\n".join(lines)


def _run(report: SelfTestReport, name: str, fn) -> object:
    t0 = time.perf_counter()
    try:
        ok, detail, value = fn()
    except Exception as exc:  # a self-test reports every failure instead of stopping at the first
        ok, detail, value = False, f"{type(exc).__name__}: {exc}", None
    report.checks.append(Check(name, bool(ok), detail, 1000 * (time.perf_counter() - t0)))
    return value if ok else None


def run_selftest(bundle: Path | None = None, embedder: Path | None = None, detector_format: str | None = None,
                 relay: str | None = None, relay_pin: int = 17, threads: int | None = None,
                 backend: str | None = None) -> SelfTestReport:
    from facegate.edge.cards import load_card
    from facegate.edge.detect.face import pick_face
    from facegate.edge.face.pipeline import Pipeline, PipelineConfig
    from facegate.edge.gallery import Decision, GalleryStore, KeySource, Matcher, ModelBinding
    from facegate.edge.images import list_images, load_rgb
    from facegate.edge.registry import DEFAULT_DETECTOR, MODELS_DIR, default_embedder_path

    report = SelfTestReport()
    models = Path(bundle) / "models" if bundle else None
    det_dir = (models / DEFAULT_DETECTOR) if models else MODELS_DIR / DEFAULT_DETECTOR
    if embedder is None and models:
        # the embedder file the chosen runtime can run (a bundle may carry .tflite and .onnx)
        from facegate.edge.backends import suffix_for_backend
        wanted = [suffix_for_backend(backend)] if backend else \
            [f".{detector_format}"] if detector_format else [".tflite", ".onnx"]
        candidates = [p for sfx in wanted for p in sorted(models.glob(f"*{sfx}"))]
        embedder = candidates[0] if candidates else None
    if embedder is None:
        embedder = default_embedder_path()

    def check_cards():
        files = [p for p in sorted(det_dir.iterdir()) if p.suffix in (".tflite", ".onnx")] + [Path(embedder)]
        for f in files:
            load_card(f)
        return True, f"{len(files)} model files match their cards", files
    _run(report, "model checksums", check_cards)

    def load_pipeline():
        cfg = PipelineConfig(detector=str(det_dir), detector_format=detector_format, embedder=str(embedder),
                             threads=threads, min_face_size=20, backend=backend, detector_backend=backend)
        pipe = Pipeline.from_config(cfg)
        return True, f"{pipe.detector.name} + {pipe.embedder.name} ({pipe.embedder.backend.name})", pipe
    pipe = _run(report, "load models", load_pipeline)

    photos_root = Path(bundle) / "selftest" if bundle else None
    if photos_root is None or not photos_root.exists():
        from facegate.edge.downloads import celebrity5_dir
        photos_root = celebrity5_dir() / "val"
    people = {p.name: list_images(p)[:2] for p in sorted(photos_root.iterdir()) if p.is_dir()}
    people = {k: v for k, v in people.items() if len(v) >= 2}

    def embed_photos():
        out, per_face = {}, []
        for person, paths in people.items():
            vecs = []
            for path in paths:
                img = load_rgb(path)
                t0 = time.perf_counter()
                face = pick_face(pipe.detector.detect(img), img.shape, "largest")
                if face is None:
                    return False, f"no face found in {path.name}", None
                vec = pipe.embedder.embed(pipe.crop(img, face)[None])[0]
                per_face.append(1000 * (time.perf_counter() - t0))
                if not np.all(np.isfinite(vec)):
                    return False, f"non-finite embedding for {path.name}", None
                vecs.append(vec)
            out[person] = vecs
        if len(out) < 2:
            return False, f"need photos of two people under {photos_root}", None
        return True, f"{len(per_face)} faces, median {np.median(per_face):.0f} ms detect+embed each", out
    vectors = _run(report, "detect-align-embed", embed_photos) if pipe else None

    def separation():
        same = [float(v[0] @ v[1]) for v in vectors.values()]
        names = list(vectors)
        diff = [float(vectors[a][0] @ vectors[b][0]) for i, a in enumerate(names) for b in names[i + 1:]]
        ok = min(same) > max(diff)
        return ok, f"same-person min {min(same):.3f} vs different-person max {max(diff):.3f}", None
    if vectors:
        _run(report, "same > different", separation)

    def gallery_round_trip():
        card = pipe.embedder.card
        with tempfile.TemporaryDirectory() as tmp:
            store = GalleryStore(Path(tmp) / "g.fgg", KeySource("raw", secrets.token_bytes(32)))
            binding = ModelBinding(card.name, card.sha256, int(card.embedding_dim or len(next(iter(vectors.values()))[0])))
            store.create(binding)
            with store.transaction() as g:
                for person, vecs in vectors.items():
                    g.add_templates(g.add_person(person).id, np.stack(vecs[:1]))
            g = store.load(expect=binding)
            accept = card.thresholds.get("1e-3", 0.5)
            person, vecs = next(iter(vectors.items()))
            r = Matcher(g, accept).identify(vecs[1])
            ok = r.decision is Decision.ACCEPT and r.name == person
            return ok, f"encrypted, reloaded, identified {r.name} ({r.score:.3f})", None
    if vectors:
        _run(report, "encrypted gallery", gallery_round_trip)

    if relay:
        def toggle():
            from facegate.edge.door.relay import make_relay
            r = make_relay(relay, relay_pin)
            states = [r.locked]
            r.unlock()
            states.append(r.locked)
            time.sleep(0.2)
            r.lock()
            states.append(r.locked)
            r.close()
            return states == [True, False, True], f"{relay} relay locked -> unlocked -> locked", None
        _run(report, "relay", toggle)
        if relay != "mock":
            _run(report, "relay after SIGKILL", lambda: killed_while_unlocked(relay, relay_pin))
    return report


KILLED_CHILD = """
import sys, time
from facegate.edge.door.relay import make_relay
relay = make_relay(sys.argv[1], sys.argv[2])
relay.unlock()
print("UNLOCKED" if not relay.locked else "STILL LOCKED", flush=True)
time.sleep(60)
"""


def killed_while_unlocked(kind: str, pin: int | str) -> tuple[bool, str, None]:
    """A process unlocks the relay and is SIGKILLed (no handler runs); the line must then read low."""
    from facegate.edge.door.relay import read_released_line
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, kind, str(pin)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        said = child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    if said != "UNLOCKED":
        return False, f"the test process could not unlock the relay ({said or child.stderr.read()[-200:]})", None
    time.sleep(0.2)
    if read_released_line(kind, pin):
        return False, ("the line stays HIGH after the door process was killed: the door would stay open. Add "
                       "the 10 kOhm pull-down to the relay input (hardware/WIRING.md)"), None
    return True, "line low (locked) after SIGKILL while unlocked: the pull-down holds it", None
