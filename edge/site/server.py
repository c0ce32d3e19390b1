"""Running a site: the verification service for its embedder, and uvicorn serving the application.

The embedder is loaded at start (its card gives the model binding of the site's templates and the
thresholds); the detector and liveness nets load on the first request that sends an image, so a
server that answers embeddings only never pays for them.
"""
from __future__ import annotations

import logging
import signal
from dataclasses import replace
from pathlib import Path

from facegate.edge.errors import SiteError
from facegate.edge.gallery.matching import thresholds_from_card
from facegate.edge.gallery.records import ModelBinding
from facegate.edge.site.folder import Site
from facegate.edge.site.verification import VerificationService
from facegate.edge.site.web import Settings, create_app

log = logging.getLogger(__name__)


def make_service(site: Site, config=None, far: str = "1e-3", retry_far: str = "1e-2",
                 liveness: bool = True) -> VerificationService:
    """The verification service of `site` for the pipeline `config` (a PipelineConfig; default one)."""
    from facegate.edge.face.pipeline import Pipeline, PipelineConfig
    from facegate.edge.registry import get_embedder, load_liveness
    config = config or PipelineConfig()
    embedder = get_embedder(config.embedder, threads=config.threads, backend=config.backend)
    binding = ModelBinding.for_embedder(embedder)
    accept, retry = thresholds_from_card(embedder.card.thresholds, far, retry_far)

    def pipeline() -> Pipeline:
        full = Pipeline.from_config(replace(config), liveness=load_liveness(threads=config.threads) if liveness else None)
        full.embedder = embedder          # one embedder instance: the binding above is the one it runs
        return full
    return VerificationService(site.store, site.sealer, binding, accept, retry, pipeline)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def start_fleet(site: Site, service: VerificationService, settings: Settings, run_broker: bool):
    """The fleet service (and, with `run_broker`, a mosquitto child on the generated files); (fleet, broker)."""
    from facegate.edge.fleet import provisioning
    from facegate.edge.fleet.broker import Mosquitto, write_files
    from facegate.edge.fleet.ingest import SiteFleet
    mosquitto = None
    if run_broker:
        users, acl = provisioning.broker_accounts(site.store, site)
        conf = write_files(site.folder / "broker", settings.broker_port, users, acl, settings.broker_host,
                           settings.broker_tls_cert, settings.broker_tls_key)
        mosquitto = Mosquitto(conf, settings.broker_port, settings.broker_host, settings.broker_tls_cert,
                              settings.broker_tls_key).start()
    fleet = SiteFleet(site, service.binding, settings.broker_host, settings.broker_port, mosquitto,
                      settings.broker_ca).start()
    return fleet, mosquitto


def serve(site: Site, service: VerificationService, host: str = "127.0.0.1", port: int = 8443,
          tls_cert: Path | None = None, tls_key: Path | None = None, settings: Settings | None = None,
          grpc_port: int | None = None, fleet: bool = False, run_broker: bool = False) -> None:
    """Serve until interrupted (uvicorn, one process: the store connection and the batcher live here);
    with `grpc_port`, the gRPC verification service beside it (same certificate); with `fleet`, the MQTT
    fleet service (events in, snapshots out) on the broker `settings` names, started here with `run_broker`."""
    import uvicorn
    if (tls_cert is None) != (tls_key is None):
        raise SiteError("give both --tls-cert and --tls-key, or neither")
    for path in (tls_cert, tls_key):
        if path is not None and not Path(path).is_file():
            raise SiteError(f"TLS file not found: {path}")
    settings = settings or Settings()
    settings.tls = tls_cert is not None
    fleet_service, broker = start_fleet(site, service, settings, run_broker) if fleet else (None, None)
    app = create_app(site, service, settings, fleet=fleet_service)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.tls:
        log.warning("serving on %s without TLS: passwords and faces cross the network in clear; give --tls-cert "
                    "and --tls-key", host)
    scheme = "https" if settings.tls else "http"
    log.info("site %s at %s://%s:%d/ (API docs at /docs)", site.site_id, scheme, host, port)
    # uvicorn stops on SIGTERM and then raises the signal again with the handler it found: make that one end
    # the process through the `finally` below (fleet service and broker stopped, exit 130), not abruptly
    signal.signal(signal.SIGTERM, _interrupt)
    grpc_server = None
    if grpc_port is not None:
        from facegate.edge.site.grpc_service import start
        grpc_server = start(site.store, service, host, grpc_port, tls_cert, tls_key)
        log.info("gRPC verification service on %s:%d", host, grpc_server.port)
    try:
        uvicorn.run(app, host=host, port=port, ssl_certfile=str(tls_cert) if tls_cert else None,
                    ssl_keyfile=str(tls_key) if tls_key else None, access_log=False, log_level="warning")
    finally:
        if grpc_server is not None:
            grpc_server.stop(2)
        if fleet_service is not None:
            fleet_service.stop()
        if broker is not None:
            broker.stop()
