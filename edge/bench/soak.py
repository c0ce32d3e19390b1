"""The door soak: a real `facegate door run` process on replayed frames for as long as asked, its
memory and open files sampled from /proc, to show that nothing grows with the hours (frames, decisions,
audit entries and rotations, snapshots, status requests all keep coming).

The frames cycle through a member (opens the door), an empty hall, a stranger (rejected, then lockouts)
and the hall again; the status port is polled and claimed at every sample. The audit log rotates every
64 KB so rotation and pruning run many times an hour. At the end the door gets SIGTERM (it must lock and
exit 130) and its audit chain must verify.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2

from facegate.edge.bench.frames import door_frame
from facegate.edge.bench.loopback import free_port
from facegate.edge.images import list_images

log = logging.getLogger(__name__)
#: verdict: RSS may grow at most this much from the first to the last tenth of the run (after warm-up)
MAX_RSS_GROWTH_MB = 16.0


def _proc_stats(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {line.split(":")[0]: line.split(":")[1].split() for line in status.splitlines() if ":" in line}
    return {"rss_mb": int(fields["VmRSS"][0]) / 1024, "hwm_mb": int(fields["VmHWM"][0]) / 1024,
            "threads": int(fields["Threads"][0]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def _get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def prepare(workdir: Path, celeb_dir: Path, embedder: str | None = None, fps: float = 30.0) -> Path:
    """Frames, a gallery with one member, and door.toml in `workdir`; returns door.toml."""
    from facegate.edge.face.pipeline import Pipeline
    from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
    from facegate.edge.gallery.keys import write_keyfile
    workdir.mkdir(parents=True, exist_ok=True)
    frames = workdir / "frames"
    frames.mkdir(exist_ok=True)
    member = door_frame(list_images(celeb_dir / "val" / "jerry_seinfeld")[0])
    stranger = door_frame(list_images(celeb_dir / "val" / "madonna")[0])
    hall = member.copy()
    hall[:] = 128
    sequence = [member] * 30 + [hall] * 20 + [stranger] * 30 + [hall] * 20
    for i, f in enumerate(sequence):
        cv2.imwrite(str(frames / f"{i:04d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    key_file = workdir / "gallery.key"
    if not key_file.exists():
        write_keyfile(key_file)
    gallery = workdir / "gallery.fgg"
    pipe = Pipeline.from_config(**({"embedder": embedder} if embedder else {}))
    if not gallery.exists():
        store = GalleryStore(gallery, KeySource.from_keyfile(key_file))
        with store.open_or_create(ModelBinding.for_embedder(pipe.embedder)) as (g, _):
            person = g.add_person("Jerry")
            vecs = [pipe.embed(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), require_quality=False).vector
                    for p in list_images(celeb_dir / "train" / "jerry_seinfeld")[:5]]
            g.add_templates(person.id, vecs)
    cfg = workdir / "door.toml"
    cfg.write_text(f"""
[door]
detect_every = 2
pulse_seconds = 1
[camera]
source = "folder"
device = "{frames}"
loop = true
fps = {fps}
[relay]
kind = "mock"
[gallery]
path = "{gallery}"
key_file = "{key_file}"
[audit]
path = "{workdir / 'audit' / 'audit.jsonl'}"
max_bytes = 65536
keep = 3
[http]
port = {free_port()}
[liveness]
enabled = false      # the frames are photos pasted on a wall, which liveness (rightly) refuses
[pipeline]
{f'embedder = "{embedder}"' if embedder else ''}
""")
    return cfg


def soak(workdir: Path, minutes: float, sample_every_s: float = 10.0, warmup_s: float = 60.0,
         embedder: str | None = None, fps: float = 30.0) -> dict:
    """Run the door for `minutes` at a camera's `fps` (0: as fast as it goes); returns the samples, the
    summary and the verdict."""
    from facegate.edge.door.audit import verify
    from facegate.edge.door.config import load_door_config
    from facegate.edge.downloads import celebrity5_dir
    cfg_path = prepare(workdir, celebrity5_dir(), embedder, fps or 30.0)
    cfg = load_door_config(cfg_path)
    base = f"http://127.0.0.1:{cfg.http.port}"
    proc = subprocess.Popen([sys.executable, "-m", "facegate.apps.cli", "door", "run", "--config", str(cfg_path),
                             *(["--realtime"] if fps else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()                       # "status: http://..." once the port listens
    samples, t0, http_errors = [], time.monotonic(), 0
    end = t0 + minutes * 60
    try:
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(max(0.0, min(sample_every_s, end - time.monotonic())))
            stats = _proc_stats(proc.pid)        # before this sample's own requests open sockets
            code, body = _get(base + "/status")
            frames = json.loads(body).get("frames", 0) if code == 200 else None
            http_errors += (code != 200) + (_get(base + "/snapshot.jpg")[0] != 200) + \
                (_get(base + "/claim", b'{"badge": "nobody"}')[0] not in (202, 429))
            samples.append({"t_s": round(time.monotonic() - t0, 1), **{k: round(v, 1) for k, v in stats.items()},
                            "frames": frames})
            done = (time.monotonic() - t0) / (minutes * 60)
            bar = "#" * int(30 * done)
            print(f"\rsoak [{bar:<30}] {done:4.0%}  rss {stats['rss_mb']:.0f} MB  fds {stats['fds']}  "
                  f"frames {frames}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=60)
    out, err = proc.stdout.read(), proc.stderr.read()
    audit = verify(cfg.audit.path, key_file=Path(cfg.audit.path).with_name("audit.jsonl.key"))
    return summarise(samples, minutes, warmup_s, exit_code, out + err, audit, http_errors)


def summarise(samples: list[dict], minutes: float, warmup_s: float, exit_code: int, output: str, audit: dict,
              http_errors: int) -> dict:
    steady = [s for s in samples if s["t_s"] >= warmup_s] or samples
    tenth = max(1, len(steady) // 10)
    rss_start = statistics.median(s["rss_mb"] for s in steady[:tenth])
    rss_end = statistics.median(s["rss_mb"] for s in steady[-tenth:])
    fds = [s["fds"] for s in steady]
    threads = [s["threads"] for s in steady]

    def trend(values: list) -> float:   # last tenth's median minus the first tenth's (a reading taken
        return statistics.median(values[-tenth:]) - statistics.median(values[:tenth])   # mid-read is not a leak
    frames = samples[-1]["frames"] if samples and samples[-1]["frames"] is not None else 0
    summary = {
        "minutes": minutes, "samples": len(samples), "frames": frames,
        "fps": round(frames / samples[-1]["t_s"], 1) if samples else 0,
        "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_start, 1), "rss_peak_mb": max(s["hwm_mb"] for s in samples),
        "fds_min": min(fds), "fds_max": max(fds), "fds_growth": trend(fds),
        "threads_min": min(threads), "threads_max": max(threads), "threads_growth": trend(threads),
        "exit_code": exit_code, "audit_entries": audit["entries"], "audit_last_seq": audit["last_seq"],
        "audit_files": len(audit["files"]), "http_errors": http_errors,
    }
    summary["flat"] = (summary["rss_growth_mb"] <= MAX_RSS_GROWTH_MB and summary["fds_growth"] <= 0
                       and summary["threads_growth"] <= 0 and exit_code == 130 and http_errors == 0)
    if exit_code != 130:
        summary["door_output_tail"] = output[-2000:]
    return {"summary": summary, "samples": samples}


def plot(result: dict, path: Path) -> bool:
    """RSS and open files over the run (PNG); False without matplotlib (the `convert` extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (the convert extra): no soak plot")
        return False
    samples = result["samples"]
    t = [s["t_s"] / 60 for s in samples]
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    a.plot(t, [s["rss_mb"] for s in samples], label="RSS")
    a.set_ylabel("MB")
    a.set_ylim(bottom=0)
    a.legend(loc="lower right")
    a.set_title(f"door soak: {result['summary']['frames']} frames, RSS growth {result['summary']['rss_growth_mb']} MB")
    b.plot(t, [s["fds"] for s in samples], label="open files")
    b.plot(t, [s["threads"] for s in samples], label="threads")
    b.set_xlabel("minutes")
    b.legend(loc="lower right")
    b.set_ylim(bottom=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


__all__ = ["soak", "summarise", "plot", "MAX_RSS_GROWTH_MB"]
