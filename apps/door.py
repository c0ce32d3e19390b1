"""`facegate door run --config door.toml`: the door unit. Configuration is one TOML file read by the
door's schema (facegate.edge.door.config): unknown keys and values of the wrong type are refused."""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from facegate.edge.door.camera import open_source, paced
from facegate.edge.door.config import load_door_config
from facegate.edge.door.unit import DoorApp
from facegate.edge.errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError

log = logging.getLogger(__name__)


def cmd_door(args) -> int:
    cfg = load_door_config(args.config)
    app = DoorApp.from_config(cfg)
    server = None
    source = open_source(cfg.camera)
    try:
        if cfg.http.enabled:
            from facegate.edge.door.status_http import StatusServer, read_token
            token = read_token(cfg.http.token_file) if cfg.http.token_file else None
            server = StatusServer(app, cfg.http.host, cfg.http.port, token=token, tls_cert=cfg.http.tls_cert,
                                  tls_key=cfg.http.tls_key).start()
            print(f"status: {server.scheme}://{cfg.http.host}:{server.port}/health", flush=True)
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
          f"{counts['reject']} rejected, {counts['lockout']} lockouts"
          + (f"; locked and stopped by {counts['signal']}" if counts.get("signal") else ""))
    return EXIT_INTERRUPTED if counts.get("signal") else EXIT_OK


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


def cmd_register(args) -> int:
    from facegate.edge.fleet.registration import register_door
    creds = register_door(args.site, args.token, args.out, args.ca_file)
    print(f"door {creds.door_id} of site {creds.site_id} registered (group {creds.door_group or 'all doors'}); "
          f"credentials in {args.out / 'fleet.json'} (0600)")
    print(f"next: facegate door sync --config door.toml --fleet {args.out / 'fleet.json'}")
    return EXIT_OK


def cmd_sync(args) -> int:
    """The fleet agent beside the door loop: until SIGTERM/SIGINT."""
    import signal

    from facegate.edge.fleet.agent import DoorAgent, FleetCredentials, binding_in_use
    from facegate.edge.gallery.records import ModelBinding
    from facegate.edge.registry import get_embedder
    cfg = load_door_config(args.config)
    fleet = args.fleet or (Path(cfg.fleet.credentials) if cfg.fleet.credentials else None)
    if fleet is None:
        raise ConfigError("no fleet credentials: give --fleet or set [fleet] credentials in door.toml")
    creds = FleetCredentials.load(fleet)
    state = cfg.fleet.state_path(cfg.audit.path)
    binding = binding_in_use(Path(cfg.gallery.path), ModelBinding.for_embedder(get_embedder(cfg.pipeline.embedder)),
                             state / "models")
    agent = DoorAgent(creds, Path(cfg.audit.path), Path(cfg.gallery.path), state, binding,
                      heartbeat_s=args.heartbeat, status={"liveness_mode": cfg.liveness.mode if cfg.liveness.enabled
                                                          else "off"}).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"door {creds.door_id}: syncing with site {creds.site_id} via {creds.broker_host}:{creds.broker_port}",
          flush=True)
    stop.wait()
    agent.stop()
    return EXIT_INTERRUPTED


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("door", help="run the door unit")
    ds = d.add_subparsers(dest="door_cmd", required=True)
    run = ds.add_parser("run", help="camera -> face -> decision -> relay + audit")
    run.add_argument("--config", type=Path, required=True, help="door.toml")
    run.add_argument("--max-frames", type=int, default=None, help="stop after N frames (tests, demos)")
    run.add_argument("--claims-from-stdin", action="store_true", help="read badge ids / PINs from stdin (keypad)")
    run.add_argument("--realtime", action="store_true", help="replay folder/video sources at the camera fps")
    run.set_defaults(func=cmd_door)
    reg = ds.add_parser("register", help="join a site: trade a one-time token for this door's fleet credentials")
    reg.add_argument("--site", required=True, help="the site server's URL (https://...)")
    reg.add_argument("--token", required=True, help="the one-time registration token (fgr_...) from the web admin")
    reg.add_argument("--out", type=Path, default=Path("/etc/facegate/fleet"), help="where to keep the credentials")
    reg.add_argument("--ca-file", type=Path, default=None, help="the site's certificate authority (PEM)")
    reg.set_defaults(func=cmd_register)
    sy = ds.add_parser("sync", help="the fleet agent: events to the site, gallery snapshots from it, heartbeats")
    sy.add_argument("--config", type=Path, required=True, help="the door's door.toml (audit log, gallery, model)")
    sy.add_argument("--fleet", type=Path, default=None,
                    help="fleet.json written by `door register` (default: [fleet] credentials of door.toml)")
    sy.add_argument("--heartbeat", type=float, default=10.0, help="seconds between heartbeats")
    sy.set_defaults(func=cmd_sync)
