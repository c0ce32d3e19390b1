"""The verification service over gRPC: Verify and Identify with the HTTP API's rules and answers.

Same tokens and scopes (metadata ``authorization: Bearer fgt_...``), same checks on probes, same
liveness refusal for images, same batched 1:N; a refusal becomes the gRPC status that says the same
thing as the HTTP code (401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 413
RESOURCE_EXHAUSTED, 422/400 INVALID_ARGUMENT) with the same message, never a traceback.
"""
from __future__ import annotations

import logging
from concurrent import futures
from pathlib import Path

import grpc

from facegate.edge.errors import FacegateError, ImageError, SiteRequestError
from facegate.edge.site import accounts
from facegate.edge.site import verification_pb2 as pb
from facegate.edge.site import verification_pb2_grpc as pb_grpc
from facegate.edge.site.store import SiteStore
from facegate.edge.site.verification import VerificationService, result_json

log = logging.getLogger(__name__)

_STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
           403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
           409: grpc.StatusCode.ALREADY_EXISTS, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
           415: grpc.StatusCode.INVALID_ARGUMENT, 422: grpc.StatusCode.INVALID_ARGUMENT,
           501: grpc.StatusCode.UNIMPLEMENTED}
MAX_MESSAGE = 10 * 1024 * 1024


class VerificationServicer(pb_grpc.VerificationServicer):
    def __init__(self, store: SiteStore, service: VerificationService) -> None:
        self.store, self.service = store, service

    def _client(self, context) -> accounts.ApiClient:
        header = dict(context.invocation_metadata()).get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        client = accounts.client_for(self.store, token)
        if client is None:
            raise SiteRequestError("an API token is required (metadata authorization: Bearer fgt_...)", 401)
        if "verify" not in client.scopes:
            raise SiteRequestError("this token may not do this (needs scope 'verify')", 403)
        return client

    def _probe(self, probe: pb.Probe, client: accounts.ApiClient):
        kind = probe.WhichOneof("kind")
        if kind == "embedding":
            if "verify:embedding" not in client.scopes:
                raise SiteRequestError("this token may not send embeddings (needs scope 'verify:embedding')", 403)
            return self.service.probe_from_list(list(probe.embedding.values)), None
        if kind == "image":
            return self.service.probe_from_image(probe.image, "image")
        raise SiteRequestError("the probe needs an image or an embedding", 422)

    def _answer(self, context, work) -> pb.MatchReply:
        try:
            return _reply(*work())
        except SiteRequestError as exc:
            context.abort(_STATUS.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), str(exc))
        except ImageError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except FacegateError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except Exception as exc:    # noqa: BLE001 - one line in the log, a plain status for the client
            log.error("internal error in a gRPC call: %s: %s", type(exc).__name__, exc)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")

    def Verify(self, request: pb.VerifyRequest, context) -> pb.MatchReply:   # noqa: N802 (gRPC's names)
        def work():
            client = self._client(context)
            if not request.person:
                raise SiteRequestError("say who is claimed: 'person' (site id or name)", 422)
            probe, live = self._probe(request.probe, client)
            return self.service.verify(probe, request.person, request.door_group or None), live
        return self._answer(context, work)

    def Identify(self, request: pb.IdentifyRequest, context) -> pb.MatchReply:   # noqa: N802
        def work():
            client = self._client(context)
            probe, live = self._probe(request.probe, client)
            return self.service.identify(probe, request.door_group or None), live
        return self._answer(context, work)


def _reply(result, live) -> pb.MatchReply:
    body = result_json(result, live)
    reply = pb.MatchReply(decision=body["decision"], person=body["person"] or "", name=body["name"] or "",
                          score=body["score"], accept_threshold=body["accept_threshold"],
                          retry_threshold=body["retry_threshold"], reasons=body["reasons"])
    if live is not None:
        reply.liveness.CopyFrom(pb.Liveness(live=live["live"], score=live["score"], threshold=live["threshold"]))
    return reply


def start(store: SiteStore, service: VerificationService, host: str, port: int, tls_cert: Path | None = None,
          tls_key: Path | None = None, workers: int = 16) -> grpc.Server:
    """A started gRPC server (stop it with ``server.stop(grace)``); port 0 picks a free one
    (``server.port`` says which)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                  ("grpc.max_send_message_length", 1024 * 1024)])
    pb_grpc.add_VerificationServicer_to_server(VerificationServicer(store, service), server)
    address = f"{host}:{port}"
    if tls_cert is not None and tls_key is not None:
        creds = grpc.ssl_server_credentials([(Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())])
        server.port = server.add_secure_port(address, creds)
    else:
        server.port = server.add_insecure_port(address)
    server.start()
    return server
