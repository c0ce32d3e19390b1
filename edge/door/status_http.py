"""A small local HTTP endpoint for the kiosk: GET /health, GET /status, GET /snapshot.jpg, and
POST /claim (badge or PIN for claimed-identity mode).

Bound to 127.0.0.1 by default: it is for the kiosk's own screen and the local supervisor. Anything else
needs a token (`[http] token_file`), and then every route except /health asks for
`Authorization: Bearer <token>` (the snapshot shows a face and a name; the status the last decision);
with `tls_cert` / `tls_key` it speaks HTTPS. A claim's answer is the same for every badge (the port is not
an enrolment oracle) and claims are rate limited by the door. Malformed requests get a JSON 400/404/411/413,
never a traceback.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from facegate.edge.errors import ConfigError

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4096


def is_loopback(host: str) -> bool:
    """Does binding to `host` keep the port on this machine? ('localhost' and 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str | Path) -> str:
    """The shared secret from a private file (at least 16 characters)."""
    path = Path(path)
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"[http] token_file {path} is readable by other users; run: chmod 600 {path}")
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"[http] token_file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from exc
    if len(token) < 16:
        raise ConfigError(f"[http] token_file {path} must hold a token of at least 16 characters")
    return token


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:   # no tracebacks on stderr
        log.warning("status port: request from %s failed", client_address[0], exc_info=log.isEnabledFor(logging.DEBUG))


class StatusServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 8080, stale_after_s: float = 10.0,
                 token: str | None = None, tls_cert: str | None = None, tls_key: str | None = None) -> None:
        if not is_loopback(host) and not token:
            raise ConfigError(f"[http] host = {host!r} opens the door's status port to the network: set "
                              "[http] token_file (a private file with a long random token) or bind 127.0.0.1")
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError("[http] tls_cert and tls_key go together")
        self.app = app
        self.stale_after_s = stale_after_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "facegate-door"
            sys_version = ""
            timeout = 10   # a client that stops sending (or never finishes TLS) frees its thread

            def setup(self):
                super().setup()
                if isinstance(self.connection, ssl.SSLSocket):
                    self.connection.do_handshake()   # under this handler's timeout

            def log_message(self, *args):  # keep access logs out of the door's log
                pass

            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if token is None:
                    return True
                given = self.headers.get("Authorization", "")
                if given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
                    return True
                self._json(401, {"error": "this door's status port needs its token (Authorization: Bearer ...)"})
                return False

            def do_GET(self):
                status = dict(outer.app.status)
                age = time.time() - status.get("last_frame", 0) if status.get("last_frame") else None
                if self.path == "/health":
                    healthy = age is not None and age < outer.stale_after_s and not status.get("fault")
                    return self._json(200 if healthy else 503, {
                        "ok": healthy, "door": status["door"], "fault": status.get("fault"),
                        "last_frame_age_s": None if age is None else round(age, 2)})
                if self.path not in ("/status", "/snapshot.jpg"):
                    return self._json(404, {"error": "not found"})
                if not self._authorised():
                    return None
                if self.path == "/status":
                    return self._json(200, status)
                snapshot = outer.app.snapshot
                if not snapshot:
                    return self._json(404, {"error": "no frame yet"})
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(snapshot)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(snapshot)
                return None

            def do_POST(self):
                if self.path != "/claim":
                    return self._json(404, {"error": "not found"})
                if not self._authorised():
                    return None
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    return self._json(411, {"error": "send a Content-Length"})
                if not 0 <= length <= MAX_BODY_BYTES:
                    return self._json(413, {"error": f"a claim is at most {MAX_BODY_BYTES} bytes"})
                try:
                    body = json.loads(self.rfile.read(length).decode("utf-8"))
                    badge = body["badge"] if isinstance(body, dict) else None
                except (ValueError, KeyError):   # bad JSON, bad UTF-8, no badge
                    badge = None
                if not isinstance(badge, (str, int)) or isinstance(badge, bool) or not str(badge).strip():
                    return self._json(400, {"error": 'send JSON {"badge": "..."}'})
                answer = outer.app.claim(str(badge))
                if answer == "rate_limited":
                    return self._json(429, {"claim": answer, "error": "too many claims; wait a little"})
                return self._json(202, {"claim": answer})

            def do_PUT(self):
                self._json(405, {"error": "method not allowed"})

            do_DELETE = do_PATCH = do_PUT

        server_cls = type("_DoorServer", (_Server,), {"address_family": socket.AF_INET6 if ":" in host
                                                       else socket.AF_INET})
        try:
            self.server = server_cls((host, port), Handler)
        except OSError as exc:
            raise ConfigError(f"[http] cannot listen on {host}:{port}: {exc.strerror}") from exc
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                ctx.load_cert_chain(tls_cert, tls_key)
            except (OSError, ssl.SSLError) as exc:
                self.server.server_close()
                raise ConfigError(f"[http] tls_cert / tls_key cannot be loaded: {exc}") from exc
            # the handshake runs in the request's own thread, so a stalled client cannot block accept()
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        if not is_loopback(host):
            log.warning("the door's status port listens on %s:%s (token required%s)", host, port,
                        ", TLS" if tls_cert else "; no TLS: the token crosses the network in clear")
        self.port = self.server.server_address[1]
        self.scheme = "https" if tls_cert else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "StatusServer":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
