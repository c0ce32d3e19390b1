"""A small local HTTP endpoint for the kiosk: GET /health, GET /status, GET /snapshot.jpg, and
POST /claim (badge or PIN for claimed-identity mode). Bound to 127.0.0.1 by default: it is for the
kiosk's own screen and the local supervisor, not the network."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StatusServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 8080, stale_after_s: float = 10.0) -> None:
        self.app = app
        self.stale_after_s = stale_after_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep access logs out of the door's log
                pass

            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                status = dict(outer.app.status)
                age = time.time() - status.get("last_frame", 0) if status.get("last_frame") else None
                if self.path == "/health":
                    healthy = age is not None and age < outer.stale_after_s
                    self._json(200 if healthy else 503, {"ok": healthy, "door": status["door"],
                                                         "last_frame_age_s": None if age is None else round(age, 2)})
                elif self.path == "/status":
                    self._json(200, status)
                elif self.path == "/snapshot.jpg" and outer.app.snapshot:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(outer.app.snapshot)))
                    self.end_headers()
                    self.wfile.write(outer.app.snapshot)
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self):
                if self.path != "/claim":
                    return self._json(404, {"error": "not found"})
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    badge = json.loads(self.rfile.read(length) or b"{}")["badge"]
                except (ValueError, KeyError):
                    return self._json(400, {"error": 'send JSON {"badge": "..."}'})
                ok = outer.app.claim(str(badge))
                self._json(200 if ok else 404, {"accepted_claim": ok})

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "StatusServer":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
