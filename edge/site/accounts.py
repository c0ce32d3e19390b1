"""Who may do what on the site: accounts with roles, login sessions and API tokens.

* Passwords are argon2id hashes (argon2-cffi's defaults, RFC 9106 low-memory profile); a password
  shorter than :data:`MIN_PASSWORD` is refused when it is set.
* After :data:`MAX_FAILURES` wrong passwords in a row an account is locked for :data:`LOCK_SECONDS`
  (counted in the store, so a restart does not reset it); an unknown user costs the same hash time as
  a known one, so timing does not tell which usernames exist.
* Sessions and API tokens are random 256-bit values given to the client once; the store keeps only
  their SHA-256, so a copy of the database opens no session.
* Roles are ordered (viewer < operator < admin); every route names the permission it needs
  (:data:`PERMISSIONS`). API tokens carry scopes instead (:data:`SCOPES`); a door's token is bound to
  its door and reaches only the door routes.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from facegate.edge.errors import SiteRequestError
from facegate.edge.site.store import IntegrityConflict, SiteStore, now

ROLES = ("viewer", "operator", "admin")
#: permission -> the lowest role that has it
PERMISSIONS = {
    "people.read": "viewer", "events.read": "viewer", "doors.read": "viewer",
    "people.write": "operator", "doors.command": "operator",
    "doors.write": "admin", "accounts": "admin", "trail.read": "admin", "tokens": "admin",
}
#: API token scopes: verify/identify with an image; with a client-computed embedding (trusted clients
#: only); the door routes (bound to one door); reading the people list
SCOPES = ("verify", "verify:embedding", "door", "people:read")
MIN_PASSWORD = 10
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
SESSION_SECONDS = 8 * 3600

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    role: str

    def can(self, permission: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(PERMISSIONS[permission])


@dataclass(frozen=True)
class Session:
    account: Account
    csrf: str
    token_hash: str


@dataclass(frozen=True)
class ApiClient:
    id: int
    name: str
    scopes: frozenset[str]
    door_id: str | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise SiteRequestError(f"the password must have at least {MIN_PASSWORD} characters", 422)


def _check_username(username: str) -> str:
    username = username.strip()
    if not (1 <= len(username) <= 64) or not all(c.isalnum() or c in "._-@" for c in username):
        raise SiteRequestError("a username is 1-64 letters, digits or . _ - @", 422)
    return username


def create_account(store: SiteStore, username: str, password: str, role: str) -> Account:
    if role not in ROLES:
        raise SiteRequestError(f"role must be one of {', '.join(ROLES)}", 422)
    username = _check_username(username)
    check_password_rules(password)
    try:
        new_id = store.insert("INSERT INTO accounts (username, pw_hash, role, created) VALUES (?, ?, ?, ?)",
                              (username, _hasher.hash(password), role, now()))
    except IntegrityConflict as exc:
        raise SiteRequestError(f"an account called {username!r} already exists", 409) from exc
    return Account(new_id, username, role)


def list_accounts(store: SiteStore) -> list[dict]:
    return store.query("SELECT id, username, role, failed, locked_until, created FROM accounts ORDER BY username")


def authenticate(store: SiteStore, username: str, password: str) -> Account:
    """The account if the password is right and the account is not locked; SiteRequestError otherwise
    (the same message for an unknown user and a wrong password)."""
    row = store.one("SELECT id, username, pw_hash, role, failed, locked_until FROM accounts WHERE username=?",
                    (username.strip(),))
    t = now()
    if row is None:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        raise SiteRequestError("wrong username or password", 401)
    if row["locked_until"] > t:
        minutes = int((row["locked_until"] - t) // 60) + 1
        raise SiteRequestError(f"this account is locked after {MAX_FAILURES} wrong passwords; try again in "
                               f"{minutes} min or ask an admin to unlock it", 423)
    try:
        _hasher.verify(row["pw_hash"], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        failed = row["failed"] + 1
        locked = t + LOCK_SECONDS if failed >= MAX_FAILURES else 0.0
        store.execute("UPDATE accounts SET failed=?, locked_until=? WHERE id=?",
                      (0 if locked else failed, locked, row["id"]))
        if locked:
            raise SiteRequestError(f"too many wrong passwords: the account is locked for {LOCK_SECONDS // 60} min",
                                   423) from None
        raise SiteRequestError("wrong username or password", 401) from None
    if row["failed"]:
        store.execute("UPDATE accounts SET failed=0 WHERE id=?", (row["id"],))
    if _hasher.check_needs_rehash(row["pw_hash"]):
        store.execute("UPDATE accounts SET pw_hash=? WHERE id=?", (_hasher.hash(password), row["id"]))
    return Account(row["id"], row["username"], row["role"])


def unlock_account(store: SiteStore, account_id: int) -> None:
    store.execute("UPDATE accounts SET failed=0, locked_until=0 WHERE id=?", (account_id,))


def set_role(store: SiteStore, account_id: int, role: str) -> None:
    if role not in ROLES:
        raise SiteRequestError(f"role must be one of {', '.join(ROLES)}", 422)
    store.execute("UPDATE accounts SET role=? WHERE id=?", (role, account_id))


# -- sessions -------------------------------------------------------------------------------------
def open_session(store: SiteStore, account: Account) -> tuple[str, Session]:
    """A new session: (the cookie value, given out once; the session)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    store.execute("DELETE FROM sessions WHERE expires < ?", (now(),))
    store.execute("INSERT INTO sessions (token_hash, account_id, csrf, expires) VALUES (?, ?, ?, ?)",
                  (digest(token), account.id, csrf, now() + SESSION_SECONDS))
    return token, Session(account, csrf, digest(token))


def session_for(store: SiteStore, token: str | None) -> Session | None:
    if not token or len(token) > 128:
        return None
    row = store.one("SELECT s.token_hash, s.csrf, s.expires, a.id, a.username, a.role FROM sessions s "
                    "JOIN accounts a ON a.id = s.account_id WHERE s.token_hash=?", (digest(token),))
    if row is None or row["expires"] < now():
        return None
    return Session(Account(row["id"], row["username"], row["role"]), row["csrf"], row["token_hash"])


def close_session(store: SiteStore, session: Session) -> None:
    store.execute("DELETE FROM sessions WHERE token_hash=?", (session.token_hash,))


def csrf_ok(session: Session, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf.encode(), str(submitted).encode())


# -- API tokens -----------------------------------------------------------------------------------
def create_token(store: SiteStore, name: str, scopes: list[str], door_id: str | None = None) -> str:
    """A new API token (returned once; the store keeps its hash)."""
    bad = sorted(set(scopes) - set(SCOPES))
    if bad or not scopes:
        raise SiteRequestError(f"unknown scopes {bad}; choose from {', '.join(SCOPES)}", 422)
    if "door" in scopes and (door_id is None or len(scopes) != 1):
        raise SiteRequestError("a door token has the single scope 'door' and names its door", 422)
    token = "fgt_" + secrets.token_urlsafe(32)
    store.insert("INSERT INTO api_tokens (name, token_hash, scopes, door_id, created) VALUES (?, ?, ?, ?, ?)",
                 (name.strip() or "token", digest(token), " ".join(sorted(scopes)), door_id, now()))
    return token


def client_for(store: SiteStore, token: str | None) -> ApiClient | None:
    if not token or not token.startswith("fgt_") or len(token) > 128:
        return None
    row = store.one("SELECT id, name, scopes, door_id FROM api_tokens WHERE token_hash=? AND revoked IS NULL",
                    (digest(token),))
    if row is None:
        return None
    return ApiClient(row["id"], row["name"], frozenset(row["scopes"].split()), row["door_id"])


def list_tokens(store: SiteStore) -> list[dict]:
    return store.query("SELECT id, name, scopes, door_id, created, revoked FROM api_tokens ORDER BY id")


def revoke_token(store: SiteStore, token_id: int) -> None:
    store.execute("UPDATE api_tokens SET revoked=? WHERE id=? AND revoked IS NULL", (now(), token_id))
