"""`facegate site init --data DIR`: create a site (store, server key, first admin);
`facegate site serve --data DIR`: its web admin and verification API (needs the `site` extra)."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from facegate.edge.errors import SiteError, UsageError

log = logging.getLogger(__name__)

ENV_PASSWORD = "FACEGATE_SITE_ADMIN_PASSWORD"


def _admin_password(args) -> tuple[str, bool]:
    """(password, generated?): $FACEGATE_SITE_ADMIN_PASSWORD, else asked twice on a terminal, else generated."""
    from facegate.edge.site.folder import generate_password
    if os.environ.get(ENV_PASSWORD):
        return os.environ[ENV_PASSWORD], False
    if sys.stdin.isatty() and not args.generate_password:
        first = getpass.getpass(f"password for {args.admin} (10+ characters): ")
        if first != getpass.getpass("again: "):
            raise UsageError("the two passwords differ; nothing was created")
        return first, False
    return generate_password(), True


def cmd_init(args) -> int:
    from facegate.edge.site.folder import init_site
    password, generated = _admin_password(args)
    site = init_site(args.data, args.admin, password, args.db)
    site.close()
    print(f"site {site.site_id} created in {args.data} (store: {'PostgreSQL' if args.db else 'SQLite'}; "
          f"server key {Path(args.data) / 'server.key'}, mode 0600: back it up, it seals every template)")
    if generated:
        print(f"admin account {args.admin!r}, password (shown once): {password}")
    print(f"next: facegate site serve --data {args.data}")
    return 0


def cmd_serve(args) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise SiteError("the site server needs its extra: pip install 'facegate[site]'") from exc
    from facegate.edge.face.pipeline import PipelineConfig
    from facegate.edge.site.folder import open_site
    from facegate.edge.site.server import make_service, serve
    from facegate.edge.site.web import Settings
    site = open_site(args.data, args.db)
    cfg = PipelineConfig.from_toml(args.config) if args.config else PipelineConfig()
    if args.embedder:
        cfg = replace(cfg, embedder=args.embedder)
    if args.no_liveness:
        log.warning("liveness check off: enrolment and identify-by-image accept photos of photos and screens")
    service = make_service(site, cfg, args.far, args.retry_far, liveness=not args.no_liveness)
    try:
        settings = Settings(check_liveness=not args.no_liveness, public_url=args.public_url,
                            broker_host=args.mqtt_host, broker_port=args.mqtt_port or 1883,
                            offline_after_s=args.offline_after,
                            broker_tls_cert=str(args.mqtt_tls_cert) if args.mqtt_tls_cert else None,
                            broker_tls_key=str(args.mqtt_tls_key) if args.mqtt_tls_key else None,
                            broker_ca=str(args.mqtt_ca) if args.mqtt_ca else None)
        serve(site, service, args.host, args.port, args.tls_cert, args.tls_key, settings, grpc_port=args.grpc_port,
              fleet=args.mqtt_port is not None or args.run_broker, run_broker=args.run_broker)
    finally:
        site.close()
    return 0


def cmd_model(args) -> int:
    from facegate.edge.fleet.models import prepare_rollout
    from facegate.edge.site.folder import open_site
    site = open_site(args.data, args.db)
    try:
        manifest = prepare_rollout(site, args.embedder, progress=print)
        site.trail.record("cli", "model-rollout", model=manifest["model"]["name"],
                          sha256=manifest["model"]["sha256"][:16], rollout=manifest["version"])
    finally:
        site.close()
    print(f"rollout {manifest['version']}: doors move to {manifest['model']['name']} as they sync (serve the site with "
          "--mqtt-port); serve it with --embedder for the API once every door has moved")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("site", help="the site server: web admin for people, doors and events, and the verification API")
    ssub = s.add_subparsers(dest="site_cmd", required=True)
    i = ssub.add_parser("init", help="create a site: store, server key (0600), first admin account")
    i.add_argument("--data", type=Path, required=True, help="the site folder to create")
    i.add_argument("--admin", default="admin", help="the first admin's username (default: admin)")
    i.add_argument("--db", default=None, help="postgresql://user:pass@host:port/db for a large site "
                   "(default: SQLite in the site folder)")
    i.add_argument("--generate-password", action="store_true",
                   help=f"generate the admin password and print it once (also when no terminal and no ${ENV_PASSWORD})")
    i.set_defaults(func=cmd_init)
    v = ssub.add_parser("serve", help="serve the web admin and the verification API")
    v.add_argument("--data", type=Path, required=True, help="the site folder (`facegate site init`)")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    v.add_argument("--port", type=int, default=8443)
    v.add_argument("--tls-cert", type=Path, default=None, help="certificate (PEM) to serve HTTPS")
    v.add_argument("--tls-key", type=Path, default=None, help="its private key (PEM)")
    v.add_argument("--grpc-port", type=int, default=None,
                   help="also serve the gRPC verification service on this port (proto: edge/site/proto)")
    v.add_argument("--mqtt-port", type=int, default=None,
                   help="run the fleet service (door events, gallery snapshots) on the MQTT broker at this port")
    v.add_argument("--mqtt-host", default="127.0.0.1", help="the broker's address, as doors reach it (default loopback)")
    v.add_argument("--run-broker", action="store_true",
                   help="start mosquitto on --mqtt-host/--mqtt-port with the site's generated files (SITE/broker)")
    v.add_argument("--mqtt-tls-cert", type=Path, default=None, help="with --run-broker: the broker's TLS certificate")
    v.add_argument("--mqtt-tls-key", type=Path, default=None, help="with --run-broker: its private key")
    v.add_argument("--mqtt-ca", type=Path, default=None, help="the authority the broker's certificate is checked against")
    v.add_argument("--offline-after", type=float, default=60.0, help="a door silent this many seconds shows as offline")
    v.add_argument("--public-url", default=None, help="the URL doors reach this server at (default: as requested)")
    v.add_argument("--db", default=None, help="the PostgreSQL URL the site was created with (default: its SQLite)")
    v.add_argument("--config", type=Path, default=None, help="TOML file with a [pipeline] section")
    v.add_argument("--embedder", default=None, help="embedding model (default: the installed default)")
    v.add_argument("--far", default="1e-3", help="accept at this false accept rate of the card (default 1e-3)")
    v.add_argument("--retry-far", default="1e-2", help="retry band down to this FAR (default 1e-2)")
    v.add_argument("--no-liveness", action="store_true", help="do not check liveness on uploaded images (warned)")
    v.set_defaults(func=cmd_serve)
    m = ssub.add_parser("model", help="move the site's doors to another embedding model: re-embed everyone from their "
                        "sealed crops, keep the bundle, announce it to the doors")
    m.add_argument("--data", type=Path, required=True, help="the site folder")
    m.add_argument("--embedder", required=True, help="committed name or .tflite/.onnx file with its card")
    m.add_argument("--db", default=None, help="the PostgreSQL URL the site was created with (default: its SQLite)")
    m.set_defaults(func=cmd_model)
