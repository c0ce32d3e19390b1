"""The site server's web application: admin pages (server-rendered, no JavaScript) and the /v1 API.

Security is in the shape of the code, not in each route: every page and API call goes through one of
:func:`_session` (a logged-in account with the named permission; forms checked against the session's
CSRF token) or :func:`_client` (a bearer API token with the named scope); bodies are bounded by
:class:`BodyLimit` before they are parsed; every response carries the security headers; every
refusal is a short message (HTML for pages, ``{"error": ...}`` for the API), never a traceback.
"""
from __future__ import annotations

import asyncio
import collections
import datetime as dt
import html
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegate.edge.errors import FacegateError, ImageError, SiteRequestError
from facegate.edge.fleet import models, provisioning
from facegate.edge.fleet.ingest import snapshot_data
from facegate.edge.site import accounts, events, people
from facegate.edge.site.accounts import Account, ApiClient, Session
from facegate.edge.site.folder import Site
from facegate.edge.site.verification import VerificationService, result_json

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "fg_session"
LOGIN_COOKIE = "fg_login"
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")


@dataclass
class Settings:
    """What `facegate site serve` decides about the running server."""

    tls: bool = False                 # cookies get Secure and responses HSTS
    max_body_mb: float = 64.0         # any request body
    max_photo_mb: float = 10.0        # one uploaded photo
    max_photos: int = 20              # photos in one enrolment
    login_per_minute: int = 10        # login attempts per client address
    check_liveness: bool = True       # enrolment and identify-by-image refuse suspected attacks
    public_url: str | None = None     # the URL doors reach the site at (default: the one the admin browses)
    broker_host: str = "127.0.0.1"    # the MQTT broker doors connect to (told to them at registration)
    broker_port: int = 1883
    offline_after_s: float = 60.0     # a door silent this long shows as offline
    broker_tls_cert: str | None = None  # the broker's TLS listener (with --run-broker): certificate and key
    broker_tls_key: str | None = None
    broker_ca: str | None = None      # the authority the site's own MQTT client checks the broker against


class BodyLimit:
    """Refuse a request body over `limit` bytes: by its Content-Length at once, and by counting what
    actually arrives (a chunked or lying client) before the parser can spool it anywhere."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(self.limit)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message
        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(self.limit)(scope, receive, send)


class SecurityHeaders:
    """Every response gets the security headers (a plain ASGI wrapper: no task per request, which the
    decorator-style middleware would cost the verification API's throughput)."""

    HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
               (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]

    def __init__(self, app, tls: bool) -> None:
        self.app = app
        self.extra = [(b"strict-transport-security", b"max-age=31536000")] if tls else []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self._names]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + self.HEADERS + self.extra}
            await send(message)
        await self.app(scope, receive, with_headers)

    _names = {k for k, _ in HEADERS} | {b"strict-transport-security"}


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"request body over the {limit // (1024 * 1024)} MB limit"}, status_code=413)


class LoginThrottle:
    """At most `per_minute` login attempts per client address in any 60 s."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        t = time.monotonic()
        with self._lock:
            q = self._seen[client]
            while q and t - q[0] > 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return False
            q.append(t)
            return True


class _Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


def create_app(site: Site, service: VerificationService, settings: Settings | None = None, fleet=None) -> FastAPI:
    """The FastAPI application for one opened site (with `fleet`, a started SiteFleet: new and revoked
    doors reach the broker at once)."""
    settings = settings or Settings()
    store = site.store
    app = FastAPI(title="facegate site", version="1", docs_url=None, redoc_url=None,
                  description="Verification API and admin pages of a facegate site.")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    throttle = LoginThrottle(settings.login_per_minute)
    app.add_middleware(BodyLimit, limit=int(settings.max_body_mb * 1024 * 1024))
    app.add_middleware(SecurityHeaders, tls=settings.tls)

    # -- cross-cutting ---------------------------------------------------------------------------
    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/v1/") or request.url.path == "/openapi.json"

    def error(request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        session = _optional_session(request)
        return templates.TemplateResponse(request, "error.html", {"message": message, "status": status,
                                                                 "session": session}, status_code=status)

    @app.exception_handler(_Redirect)
    async def redirect(request: Request, exc: _Redirect):
        return RedirectResponse(exc.url, status_code=303)

    @app.exception_handler(SiteRequestError)
    async def refused(request: Request, exc: SiteRequestError):
        return error(request, exc.status, str(exc))

    @app.exception_handler(FacegateError)
    async def facegate_error(request: Request, exc: FacegateError):
        status = 422 if isinstance(exc, ImageError) else 400
        return error(request, status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(request, 422, f"invalid request: {where} {first.get('msg', '')}".strip())

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error(request, 500, "internal error; the server log has the details")

    # -- who is asking ---------------------------------------------------------------------------
    def _optional_session(request: Request) -> Session | None:
        return accounts.session_for(store, request.cookies.get(SESSION_COOKIE))

    def _session(request: Request, permission: str) -> Session:
        session = _optional_session(request)
        if session is None:
            raise _Redirect("/login")
        if not session.account.can(permission):
            raise SiteRequestError(f"your role ({session.account.role}) may not do this", 403)
        return session

    async def _form(request: Request, session: Session, max_files: int = 0):
        form = await request.form(max_files=max_files, max_fields=50, max_part_size=64 * 1024)
        if not accounts.csrf_ok(session, form.get("csrf")):
            raise SiteRequestError("this form has expired or did not come from this site; reload the page", 403)
        return form

    def _client(request: Request, scope: str) -> ApiClient:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        client = accounts.client_for(store, token)
        if client is None:
            raise SiteRequestError("an API token is required (Authorization: Bearer fgt_...)", 401)
        if scope not in client.scopes:
            raise SiteRequestError(f"this token may not do this (needs scope {scope!r})", 403)
        return client

    def page(request: Request, name: str, session: Session, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"session": session, **context}, status_code=status)

    def record(who: Account, what: str, **fields) -> None:
        site.trail.record(who.username, what, **fields)

    # -- login -----------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(request: Request):
        nonce = secrets.token_urlsafe(24)
        response = templates.TemplateResponse(request, "login.html", {"session": None, "nonce": nonce,
                                                                     "message": None})
        _set_cookie(response, LOGIN_COOKIE, nonce, settings, max_age=1800)
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
        client = request.client.host if request.client else "?"
        nonce = request.cookies.get(LOGIN_COOKIE)
        if not nonce or not secrets.compare_digest(nonce, str(form.get("csrf", ""))):
            raise SiteRequestError("the login form has expired; reload the page", 403)
        if not throttle.allow(client):
            log.warning("login attempts from %s over the limit", client)
            response = templates.TemplateResponse(
                request, "login.html", {"session": None, "nonce": nonce,
                                        "message": "too many login attempts; wait a minute"}, status_code=429)
            response.headers["Retry-After"] = "60"
            return response
        try:
            account = await run_in_threadpool(accounts.authenticate, store, str(form.get("username", "")),
                                              str(form.get("password", "")))
        except SiteRequestError as exc:
            log.info("login refused (%s) from %s", exc.status, client)
            return templates.TemplateResponse(request, "login.html", {"session": None, "nonce": nonce,
                                                                     "message": str(exc)}, status_code=exc.status)
        token, _ = accounts.open_session(store, account)
        response = RedirectResponse("/people", status_code=303)
        _set_cookie(response, SESSION_COOKIE, token, settings, max_age=accounts.SESSION_SECONDS)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request):
        session = _session(request, "people.read")
        await _form(request, session)
        accounts.close_session(store, session)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/", include_in_schema=False)
    async def home(request: Request):
        _session(request, "people.read")
        return RedirectResponse("/people", status_code=303)

    # -- people ----------------------------------------------------------------------------------
    @app.get("/people", response_class=HTMLResponse, include_in_schema=False)
    async def people_list(request: Request, q: str = ""):
        session = _session(request, "people.read")
        return page(request, "people.html", session, people=people.search(store, q[:120]), q=q[:120])

    @app.get("/people/new", response_class=HTMLResponse, include_in_schema=False)
    async def enrol_form(request: Request):
        session = _session(request, "people.write")
        return page(request, "enrol.html", session, results=None, form={})

    @app.post("/people/new", response_class=HTMLResponse, include_in_schema=False)
    async def enrol(request: Request):
        session = _session(request, "people.write")
        form = await _form(request, session, max_files=settings.max_photos)
        uploads = [f for f in form.getlist("photos") if hasattr(f, "read") and f.filename]
        if not uploads:
            raise SiteRequestError("choose at least one photo of the person", 422)
        photos = []
        for upload in uploads:
            data = await upload.read(int(settings.max_photo_mb * 1024 * 1024) + 1)
            if len(data) > settings.max_photo_mb * 1024 * 1024:
                raise SiteRequestError(f"{upload.filename} is over the {settings.max_photo_mb:g} MB limit for a photo",
                                       413)
            photos.append((_safe_name(upload.filename), data))
        fields = {k: str(form.get(k, "")) for k in ("name", "valid_from", "valid_until", "groups")}
        results = await run_in_threadpool(people.assess_photos, service.pipeline(), photos, settings.check_liveness)
        if not any(r.ok for r in results):
            return page(request, "enrol.html", session, status=422, results=results, form=fields,
                        message="none of the photos gave a usable face; nobody was enrolled")
        person_id = await run_in_threadpool(people.enrol, store, site.sealer, service.binding, fields["name"], results,
                                            fields["valid_from"], fields["valid_until"], fields["groups"])
        service.invalidate()
        record(session.account, "person-enrol", person=person_id, templates=sum(r.ok for r in results))
        return page(request, "enrol.html", session, results=results, form={}, enrolled=people.get(store, person_id))

    @app.get("/people/{person_id}", response_class=HTMLResponse, include_in_schema=False)
    async def person_page(request: Request, person_id: str):
        session = _session(request, "people.read")
        return page(request, "person.html", session, person=people.get(store, person_id))

    @app.post("/people/{person_id}/rename", include_in_schema=False)
    async def person_rename(request: Request, person_id: str):
        session = _session(request, "people.write")
        form = await _form(request, session)
        people.rename(store, person_id, str(form.get("name", "")))
        service.invalidate()
        record(session.account, "person-rename", person=person_id)
        return RedirectResponse(f"/people/{person_id}", status_code=303)

    @app.post("/people/{person_id}/access", include_in_schema=False)
    async def person_access(request: Request, person_id: str):
        session = _session(request, "people.write")
        form = await _form(request, session)
        people.set_access(store, person_id, str(form.get("valid_from", "")), str(form.get("valid_until", "")),
                          str(form.get("groups", "")))
        service.invalidate()
        record(session.account, "person-access", person=person_id)
        return RedirectResponse(f"/people/{person_id}", status_code=303)

    @app.post("/people/{person_id}/remove", response_class=HTMLResponse, include_in_schema=False)
    async def person_remove(request: Request, person_id: str):
        session = _session(request, "people.write")
        await _form(request, session)
        receipt = people.erase(store, person_id, session.account.username)
        service.invalidate()
        record(session.account, "person-erase", person=person_id, templates=receipt["templates"],
               receipt=receipt["receipt"])
        return page(request, "erased.html", session, receipt=receipt)

    # -- doors and events ------------------------------------------------------------------------
    def doors_page_context() -> dict:
        doors = events.list_doors(store, settings.offline_after_s)
        latest = {r["door_group"]: r["version"] for r in store.query(
            "SELECT door_group, MAX(version) AS version FROM snapshots GROUP BY door_group")}
        return {"doors": doors, "alarms": events.alarms(store), "latest": latest,
                "erasures": events.erasure_confirmations(store)}

    @app.get("/doors", response_class=HTMLResponse, include_in_schema=False)
    async def doors_page(request: Request):
        session = _session(request, "doors.read")
        return page(request, "doors.html", session, new_token=None, **doors_page_context())

    @app.post("/doors", response_class=HTMLResponse, include_in_schema=False)
    async def door_add(request: Request):
        session = _session(request, "doors.write")
        form = await _form(request, session)
        door_id = events.add_door(store, str(form.get("name", "")), str(form.get("door_group", "")))
        token = provisioning.create_registration(store, door_id)
        record(session.account, "door-add", door=door_id)
        site_url = settings.public_url or str(request.base_url).rstrip("/")
        return page(request, "doors.html", session, new_token=token, new_door=door_id, site_url=site_url,
                    **doors_page_context())

    @app.post("/doors/{door_id}/revoke", include_in_schema=False)
    async def door_revoke(request: Request, door_id: str):
        session = _session(request, "doors.write")
        await _form(request, session)
        provisioning.revoke(store, door_id)
        if fleet is not None:
            await run_in_threadpool(fleet.sync_broker, True)
        record(session.account, "door-revoke", door=door_id)
        return RedirectResponse("/doors", status_code=303)

    @app.post("/doors/{door_id}/command", include_in_schema=False)
    async def door_command(request: Request, door_id: str):
        session = _session(request, "doors.command")
        form = await _form(request, session)
        door = store.one("SELECT id, revoked FROM doors WHERE id=?", (door_id,))
        if door is None or door["revoked"] is not None:
            raise SiteRequestError("no such door, or it was revoked", 404)
        if fleet is None:
            raise SiteRequestError("the fleet service is not running (serve with --mqtt-port)", 503)
        action, mode = str(form.get("action", "")), str(form.get("mode", "")) or None
        command = fleet.make_command(door_id, action, session.account.username, mode)
        record(session.account, "door-command", door=door_id, action=action, command=command["id"],
               **({"mode": mode} if mode else {}))       # in the trail before it leaves the site
        fleet.publish_command(command)
        return RedirectResponse("/doors", status_code=303)

    def _event_filters(request: Request) -> dict:
        q = request.query_params
        return {k: q.get(k, "")[:64] for k in ("door", "person", "decision", "since", "until")}

    @app.get("/events", response_class=HTMLResponse, include_in_schema=False)
    async def events_page(request: Request):
        session = _session(request, "events.read")
        filters = _event_filters(request)
        return page(request, "events.html", session, events=events.search(store, **filters), filters=filters,
                    doors=events.list_doors(store))

    @app.get("/events.csv", include_in_schema=False)
    async def events_csv(request: Request):
        _session(request, "events.read")
        rows = events.search(store, **_event_filters(request), limit=100_000)
        return PlainTextResponse(events.to_csv(rows), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="events.csv"'})

    # -- accounts, tokens, trail -----------------------------------------------------------------
    @app.get("/accounts", response_class=HTMLResponse, include_in_schema=False)
    async def accounts_page(request: Request):
        session = _session(request, "accounts")
        return page(request, "accounts.html", session, accounts=accounts.list_accounts(store),
                    tokens=accounts.list_tokens(store), roles=accounts.ROLES, scopes=accounts.SCOPES, new_token=None,
                    now=time.time())

    @app.post("/accounts", include_in_schema=False)
    async def account_add(request: Request):
        session = _session(request, "accounts")
        form = await _form(request, session)
        account = await run_in_threadpool(accounts.create_account, store, str(form.get("username", "")),
                                          str(form.get("password", "")), str(form.get("role", "")))
        record(session.account, "account-create", account=account.id, role=account.role)
        return RedirectResponse("/accounts", status_code=303)

    @app.post("/accounts/{account_id}/unlock", include_in_schema=False)
    async def account_unlock(request: Request, account_id: int):
        session = _session(request, "accounts")
        await _form(request, session)
        accounts.unlock_account(store, account_id)
        record(session.account, "account-unlock", account=account_id)
        return RedirectResponse("/accounts", status_code=303)

    @app.post("/accounts/{account_id}/role", include_in_schema=False)
    async def account_role(request: Request, account_id: int):
        session = _session(request, "accounts")
        form = await _form(request, session)
        if account_id == session.account.id:
            raise SiteRequestError("you cannot change your own role (ask another admin)", 409)
        accounts.set_role(store, account_id, str(form.get("role", "")))
        record(session.account, "account-role", account=account_id, role=str(form.get("role")))
        return RedirectResponse("/accounts", status_code=303)

    @app.post("/tokens", response_class=HTMLResponse, include_in_schema=False)
    async def token_add(request: Request):
        session = _session(request, "tokens")
        form = await _form(request, session)
        scopes = [str(s) for s in form.getlist("scopes")]
        token = accounts.create_token(store, str(form.get("name", ""))[:64], scopes)
        record(session.account, "token-create", scopes=" ".join(sorted(scopes)))
        return page(request, "accounts.html", session, accounts=accounts.list_accounts(store),
                    tokens=accounts.list_tokens(store), roles=accounts.ROLES, scopes=accounts.SCOPES, new_token=token,
                    now=time.time())

    @app.post("/tokens/{token_id}/revoke", include_in_schema=False)
    async def token_revoke(request: Request, token_id: int):
        session = _session(request, "tokens")
        await _form(request, session)
        accounts.revoke_token(store, token_id)
        record(session.account, "token-revoke", token=token_id)
        return RedirectResponse("/accounts", status_code=303)

    @app.get("/trail", response_class=HTMLResponse, include_in_schema=False)
    async def trail_page(request: Request):
        session = _session(request, "trail.read")
        try:
            check = {"ok": True, **site.trail.check()}
        except FacegateError as exc:
            check = {"ok": False, "error": str(exc)}
        return page(request, "trail.html", session, entries=site.trail.recent(), check=check)

    # -- API ---------------------------------------------------------------------------------------
    async def _probe(request: Request, client: ApiClient) -> tuple[Any, dict, dict | None]:
        """(probe, the request's other fields, liveness) from JSON with an embedding or a multipart image."""
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            if "verify:embedding" not in client.scopes:
                raise SiteRequestError("this token may not send embeddings (needs scope 'verify:embedding'); "
                                       "send an image instead", 403)
            body = await _json(request)
            if "embedding" not in body:
                raise SiteRequestError("send {\"embedding\": [...]} or a multipart form with an image", 422)
            return service.probe_from_list(body["embedding"]), body, None
        if kind.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=10, max_part_size=4096)
            upload = form.get("image")
            if upload is None or not hasattr(upload, "read"):
                raise SiteRequestError("the form needs an 'image' file", 422)
            data = await upload.read(int(settings.max_photo_mb * 1024 * 1024) + 1)
            if len(data) > settings.max_photo_mb * 1024 * 1024:
                raise SiteRequestError(f"the image is over the {settings.max_photo_mb:g} MB limit", 413)
            probe, live = await run_in_threadpool(service.probe_from_image, data, _safe_name(upload.filename or "image"))
            return probe, {k: str(v) for k, v in form.items() if k != "image"}, live
        raise SiteRequestError("send application/json (embedding) or multipart/form-data (image)", 415)

    @app.post("/v1/verify", summary="1:1: is this the claimed person?")
    async def api_verify(request: Request) -> dict:
        """Body: JSON `{"person": ID or name, "embedding": [...]}` (scope `verify:embedding`) or a multipart
        form with `person` and an `image` file (scope `verify`). Answers the door's graded decision."""
        client = _client(request, "verify")
        probe, fields, live = await _probe(request, client)
        person = fields.get("person")
        if not isinstance(person, str) or not person:
            raise SiteRequestError("say who is claimed: 'person' (site id or name)", 422)
        result = await run_in_threadpool(service.verify, probe, person, fields.get("door_group") or None)
        return result_json(result, live)

    @app.post("/v1/identify", summary="1:N: who is this?")
    async def api_identify(request: Request) -> dict:
        """Body: JSON `{"embedding": [...], "door_group": optional}` (scope `verify:embedding`) or a multipart
        form with an `image` file (scope `verify`). Concurrent requests share one matrix product."""
        client = _client(request, "verify")
        probe, fields, live = await _probe(request, client)
        group = fields.get("door_group") or None
        result = await asyncio.wrap_future(service.submit_identify(probe, group if isinstance(group, str) else None))
        return result_json(result, live)

    @app.get("/v1/people", summary="The enrolled people (ids, names, validity, groups)")
    async def api_people(request: Request, q: str = "") -> dict:
        _client(request, "people:read")
        return {"people": [{k: row[k] for k in ("id", "name", "valid_from", "valid_until", "door_groups", "templates")}
                           for row in people.search(store, q[:120])]}

    @app.post("/v1/door/register", summary="A door trades its one-time registration token for its credentials")
    async def api_door_register(request: Request) -> dict:
        body = await _json(request)
        site_url = settings.public_url or str(request.base_url).rstrip("/")
        creds = await run_in_threadpool(provisioning.register, store, site, body.get("token"), site_url,
                                        settings.broker_host, settings.broker_port)
        if fleet is not None:
            await run_in_threadpool(fleet.sync_broker)
        site.trail.record("door:" + creds["door_id"], "door-register", door=creds["door_id"])
        return creds

    @app.get("/v1/door/gallery/{version}", summary="A door downloads its group's signed gallery snapshot")
    async def api_door_gallery(request: Request, version: int) -> Response:
        client = _client(request, "door")
        door = store.one("SELECT door_group FROM doors WHERE id=?", (client.door_id,))
        data = snapshot_data(store, door["door_group"] or None, version) if door else None
        if data is None:
            raise SiteRequestError(f"no snapshot version {version} for this door's group", 404)
        return Response(data, media_type="application/octet-stream")

    @app.get("/v1/door/model/{sha256}/{name}", summary="A door downloads a file of the model bundle it moves to")
    async def api_door_model(request: Request, sha256: str, name: str) -> Response:
        _client(request, "door")
        try:
            data = await run_in_threadpool(models.site_file, site, sha256, name)
        except FacegateError as exc:
            raise SiteRequestError(str(exc), 404) from exc
        return Response(data, media_type="application/octet-stream")

    @app.post("/v1/door/events", summary="A door reports audit entries (deduplicated by door and seq)")
    async def api_door_events(request: Request) -> dict:
        client = _client(request, "door")
        body = await _json(request)
        return await run_in_threadpool(events.ingest, store, client.door_id, body.get("events"))

    @app.post("/v1/door/heartbeat", summary="A door says it is alive and what it runs")
    async def api_door_heartbeat(request: Request) -> dict:
        client = _client(request, "door")
        events.heartbeat(store, client.door_id, await _json(request))
        return {"ok": True}

    @app.get("/v1/health", summary="Liveness probe for load balancers (no authentication)")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs(request: Request):
        return templates.TemplateResponse(request, "docs.html", {"session": _optional_session(request),
                                                                "api": _api_summary(app.openapi())})

    return app


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError as exc:
        raise SiteRequestError("the body is not valid JSON", 400) from exc
    if not isinstance(body, dict):
        raise SiteRequestError("the body must be a JSON object", 422)
    return body


def _set_cookie(response: Response, name: str, value: str, settings: Settings, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=settings.tls)


def _safe_name(filename: str | None) -> str:
    """An upload's file name for messages: its last path part, printable, short."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in name if c.isprintable())[:80] or "upload"


def _when(value) -> str:
    """A store time (epoch seconds) or ISO string as 'YYYY-MM-DD HH:MM:SS UTC' for the pages."""
    if value in (None, ""):
        return "—"
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return html.escape(str(value))


def _api_summary(spec: dict) -> list[dict]:
    """The OpenAPI document as rows for the /docs page (rendered on the server: no script to load)."""
    rows = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            rows.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                         "description": op.get("description", "")})
    return rows
