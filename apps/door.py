"""`facegate door run --config door.toml`: the door unit. `facegate audit verify LOG`: check the
audit chain. Configuration is one TOML file; every section and key is checked, and unknown keys are
refused with the list of known ones (a typo must not silently disable a safety setting)."""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from facegate.edge.audit import AuditLog, verify
from facegate.edge.camera import CameraConfig, open_source, paced
from facegate.edge.config import ConfigError, read_toml
from facegate.edge.door import DoorApp, DoorSettings
from facegate.edge.gallery import GalleryStore, KeySource, Matcher
from facegate.edge.gallery.matching import thresholds_from_card
from facegate.edge.pipeline import Pipeline, PipelineConfig
from facegate.edge.policy import PolicyConfig
from facegate.edge.relay import DoorLock, make_relay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayConfig:
    kind: str = "mock"
    pin: int = 17
    active_high: bool = True
    state_file: str | None = None


@dataclass(frozen=True)
class GalleryConfig:
    path: str = "/var/lib/facegate/gallery.fgg"
    key_file: str | None = None          # else FACEGATE_GALLERY_KEY / FACEGATE_GALLERY_PASSPHRASE
    far: str = "1e-3"
    retry_far: str = "1e-2"


@dataclass(frozen=True)
class AuditConfig:
    path: str = "/var/lib/facegate/audit.jsonl"
    max_bytes: int = 10 * 1024 * 1024
    keep: int = 10


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class DisplayConfig:
    mode: str = "headless"               # 'headless' or 'window' (needs opencv-python with GUI)


@dataclass(frozen=True)
class DoorConfig:
    door: DoorSettings = field(default_factory=DoorSettings)
    camera: CameraConfig = field(default_factory=CameraConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


def _build(cls, data: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"[{where}]: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc


def load_door_config(path: str | Path) -> DoorConfig:
    doc = read_toml(path)
    sections = {f.name for f in fields(DoorConfig)}
    unknown = set(doc) - sections
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(sections))}")
    door = dict(doc.get("door", {}))
    policy = _build(PolicyConfig, door.pop("policy", {}), "door.policy")
    return DoorConfig(
        door=_build(DoorSettings, {**door, "policy": policy}, "door"),
        camera=_build(CameraConfig, doc.get("camera", {}), "camera"),
        relay=_build(RelayConfig, doc.get("relay", {}), "relay"),
        gallery=_build(GalleryConfig, doc.get("gallery", {}), "gallery"),
        audit=_build(AuditConfig, doc.get("audit", {}), "audit"),
        http=_build(HttpConfig, doc.get("http", {}), "http"),
        display=_build(DisplayConfig, doc.get("display", {}), "display"),
        pipeline=PipelineConfig.from_dict(doc.get("pipeline", {})),
    )


def build_app(cfg: DoorConfig) -> DoorApp:
    from facegate.apps.enroll import binding_of
    pipeline = Pipeline.from_config(cfg.pipeline)
    key = KeySource.from_keyfile(cfg.gallery.key_file) if cfg.gallery.key_file else KeySource.from_env()
    gallery = GalleryStore(cfg.gallery.path, key).load(expect=binding_of(pipeline.embedder))
    accept, retry = thresholds_from_card(pipeline.embedder.card.thresholds, cfg.gallery.far, cfg.gallery.retry_far)
    relay = make_relay(cfg.relay.kind, cfg.relay.pin, cfg.relay.active_high, cfg.relay.state_file)
    lock = DoorLock(relay, cfg.door.pulse_seconds)
    audit = AuditLog(cfg.audit.path, cfg.audit.max_bytes, cfg.audit.keep)
    return DoorApp(cfg.door, pipeline, Matcher(gallery, accept, retry), lock, audit)


def cmd_door(args) -> int:
    cfg = load_door_config(args.config)
    if cfg.display.mode not in ("headless", "window"):
        raise ConfigError("[display] mode must be 'headless' or 'window'")
    app = build_app(cfg)
    server = None
    source = open_source(cfg.camera)
    try:
        if cfg.http.enabled:
            from facegate.edge.status_http import StatusServer
            server = StatusServer(app, cfg.http.host, cfg.http.port).start()
            print(f"status: http://{cfg.http.host}:{server.port}/health", flush=True)
        if args.claims_from_stdin:
            threading.Thread(target=lambda: [app.claim(line) for line in sys.stdin if line.strip()],
                             daemon=True).start()
        frames = paced(source.frames(), cfg.camera.fps) if cfg.camera.source in ("folder", "video") and args.realtime \
            else source.frames()
        on_frame = _window(app) if cfg.display.mode == "window" else None
        counts = app.run(frames, max_frames=args.max_frames, on_frame=on_frame)
    finally:
        app.lock.close()
        source.close()
        if server:
            server.close()
    print(f"door stopped after {counts['frames']} frames: {counts['accept']} accepted, "
          f"{counts['reject']} rejected, {counts['lockout']} lockouts")
    return 0


def _window(app):
    import cv2
    import numpy as np
    try:
        cv2.namedWindow("facegate", cv2.WINDOW_NORMAL)
        cv2.setWindowProperty("facegate", cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
    except cv2.error as exc:
        raise ConfigError("[display] mode = 'window' needs an OpenCV build with GUI support (opencv-python, not "
                          "opencv-python-headless) and a display; use mode = 'headless'") from exc

    def show(_out):
        if app.snapshot:
            cv2.imshow("facegate", cv2.imdecode(np.frombuffer(app.snapshot, np.uint8), cv2.IMREAD_COLOR))
            if cv2.waitKey(1) == 27:
                app.stop()
    return show


def cmd_audit(args) -> int:
    info = verify(args.log, keep=args.keep)
    print(f"audit log OK: {info['entries']} entries in {', '.join(info['files'])}, last seq {info['last_seq']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("door", help="run the door unit")
    ds = d.add_subparsers(dest="door_cmd", required=True)
    run = ds.add_parser("run", help="camera -> face -> decision -> relay + audit")
    run.add_argument("--config", type=Path, required=True, help="door.toml")
    run.add_argument("--max-frames", type=int, default=None, help="stop after N frames (tests, demos)")
    run.add_argument("--claims-from-stdin", action="store_true", help="read badge ids / PINs from stdin (keypad)")
    run.add_argument("--realtime", action="store_true", help="replay folder/video sources at the camera fps")
    run.set_defaults(func=cmd_door)
    a = sub.add_parser("audit", help="audit log tools")
    asub = a.add_subparsers(dest="audit_cmd", required=True)
    v = asub.add_parser("verify", help="check the hash chain of an audit log (and its rotated files)")
    v.add_argument("log", type=Path)
    v.add_argument("--keep", type=int, default=10)
    v.set_defaults(func=cmd_audit)
