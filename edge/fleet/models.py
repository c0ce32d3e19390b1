"""Model rollout: the site moves its doors to another embedding model without a gap in who gets in.

1. On the site, `facegate site model --data DIR --embedder NAME|FILE` re-embeds every person from their
   sealed face crops with the new model (the old model's templates stay until the rollout is over),
   copies the model file and its card into ``SITE/models/<sha256>/`` and records the rollout.
2. The fleet service announces the **bundle** (file names, sizes, SHA-256s, the model binding), signed
   with the site key, on the retained ``facegate/<site>/model`` topic, and builds every door group's
   snapshot for *both* models while the rollout lasts.
3. The door's agent verifies the bundle's signature, downloads the files, checks each digest and keeps
   them in its state folder; then it takes the group's snapshot **for the new model** and renames it
   over its gallery. The door loop sees a gallery of another model, loads the installed model whose
   card matches it, and swaps embedder and gallery together (:meth:`DoorApp.reload_gallery_if_changed`).
   A door never runs a gallery with templates of a model it is not running: the gallery file says which
   model it belongs to, and that file is replaced in one rename.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from facegate.edge.downloads import sha256_of
from facegate.edge.durable import atomic_write
from facegate.edge.errors import ModelError, SiteError
from facegate.edge.fleet.snapshots import SnapshotRefused
from facegate.edge.gallery.records import ModelBinding

log = logging.getLogger(__name__)

META_KEY = "model_rollout"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def model_files(spec: str) -> Path:
    """The model file a name or path stands for (a .tflite or .onnx file with its card beside it)."""
    from facegate.edge.registry import EMBEDDERS, MODELS_DIR
    path = MODELS_DIR / EMBEDDERS[spec] if spec in EMBEDDERS else Path(spec)
    if path.suffix not in (".tflite", ".onnx") or not path.is_file():
        raise ModelError(f"a rollout needs a .tflite or .onnx model file with its card, not {spec!r}")
    if not path.with_name(path.name + ".json").is_file():
        raise ModelError(f"the card {path.name}.json is missing beside {path}")
    return path


def prepare_rollout(site, spec: str, progress: Callable[[str], None] = log.info) -> dict:
    """Re-embed everyone from their crops with the model `spec`, keep its bundle, record the rollout."""
    from facegate.edge.registry import get_embedder
    from facegate.edge.site.store import now
    path = model_files(spec)
    embedder = get_embedder(path)                       # verifies the file against its card
    binding = ModelBinding.for_embedder(embedder)
    store = site.store
    rows = store.query("SELECT id, person_id, crop FROM templates WHERE model_sha256 != ? AND crop IS NOT NULL "
                       "ORDER BY id", (binding.sha256,))
    done = {r["person_id"] for r in store.query("SELECT DISTINCT person_id FROM templates WHERE model_sha256=?",
                                                (binding.sha256,))}
    todo = [r for r in rows if r["person_id"] not in done]
    added = 0
    with store.transaction():
        for i, row in enumerate(todo, start=1):
            jpeg = site.sealer.open(row["crop"], f"crop:{row['person_id']}")
            if not jpeg:
                continue
            bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            crop = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (embedder.input_size, embedder.input_size),
                              interpolation=cv2.INTER_AREA)
            vector = embedder.embed(crop[None])[0].astype(np.float32)
            store.execute("INSERT INTO templates (person_id, model_sha256, vector, crop, created) VALUES (?, ?, ?, ?, ?)",
                          (row["person_id"], binding.sha256, site.sealer.seal(vector.tobytes(), f"template:{row['person_id']}"),
                           row["crop"], now()))
            added += 1
            if i % 200 == 0:
                progress(f"re-embedded {i} of {len(todo)} crops")
        store.bump("people_generation")
    folder = site.folder / "models" / binding.sha256
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for f in (path, path.with_name(path.name + ".json")):
        shutil.copyfile(f, folder / f.name)
        files.append({"name": f.name, "sha256": sha256_of(f), "size": f.stat().st_size})
    previous = json.loads(store.get_meta(META_KEY) or "{}")
    manifest = {"version": int(previous.get("version", 0)) + 1, "model": asdict(binding), "files": files,
                "model_file": path.name}
    store.set_meta(META_KEY, json.dumps(manifest, sort_keys=True))
    progress(f"{added} templates made with {binding.name} ({binding.sha256[:12]}...); doors switch as they sync")
    return manifest


def rollout(store) -> dict | None:
    raw = store.get_meta(META_KEY)
    return json.loads(raw) if raw else None


def sign(key, site_id: str, manifest: dict) -> dict:
    body = {**manifest, "site": site_id}
    return {**body, "signature": base64.b64encode(key.sign(_payload(body))).decode()}


def _payload(body: dict) -> bytes:
    return json.dumps({k: v for k, v in body.items() if k != "signature"}, sort_keys=True, separators=(",", ":")).encode()


def verify(announcement: dict, public_key: str, site: str) -> tuple[ModelBinding, dict]:
    """(binding, manifest) of a model bundle this door may install; SnapshotRefused otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key)).verify(
            base64.b64decode(announcement["signature"], validate=True), _payload(announcement))
    except (KeyError, TypeError, ValueError, InvalidSignature) as exc:
        raise SnapshotRefused("the model bundle's signature does not verify with this site's key") from exc
    if announcement.get("site") != site:
        raise SnapshotRefused("the model bundle belongs to another site")
    try:
        binding = ModelBinding(**announcement["model"])
        files = announcement["files"]
        ok = all(_NAME.match(f["name"]) and _SHA.match(f["sha256"]) and type(f["size"]) is int for f in files)
    except (KeyError, TypeError) as exc:
        raise SnapshotRefused(f"the model bundle is malformed ({exc})") from exc
    if not ok or not _SHA.match(binding.sha256) or announcement.get("model_file") not in {f["name"] for f in files}:
        raise SnapshotRefused("the model bundle is malformed")
    return binding, announcement


def install(announcement: dict, models_dir: Path, download: Callable[[str, str], bytes]) -> Path:
    """Download and check every file of a verified bundle into ``models_dir/<sha256>/``; the model file."""
    binding = ModelBinding(**announcement["model"])
    folder = Path(models_dir) / binding.sha256
    folder.mkdir(parents=True, exist_ok=True)
    for f in announcement["files"]:
        target = folder / f["name"]
        if target.exists() and sha256_of(target) == f["sha256"]:
            continue
        data = download(binding.sha256, f["name"])
        if len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise SnapshotRefused(f"{f['name']} does not match the bundle's signed digest")
        atomic_write(target, data)
    model = folder / announcement["model_file"]
    atomic_write(folder / "ready", b"")
    return model


def installed(models_dir: Path, sha256: str) -> Path | None:
    """The installed model file of a model whose file has this SHA-256 (None if not installed)."""
    folder = Path(models_dir) / sha256
    if not (folder / "ready").exists():
        return None
    for f in sorted(folder.iterdir()):
        if f.suffix in (".tflite", ".onnx") and f.with_name(f.name + ".json").exists() and sha256_of(f) == sha256:
            return f
    return None


def site_file(site, sha256: str, name: str) -> bytes:
    """A file of a bundle the site keeps (for the door download route); SiteError if there is none."""
    if not _SHA.match(sha256) or not _NAME.match(name):
        raise SiteError("no such model file")
    path = site.folder / "models" / sha256 / name
    if not path.is_file():
        raise SiteError("no such model file")
    return path.read_bytes()
