"""Door registration and revocation on the site.

An admin adds a door in the web admin and gets a one-time registration token (``fgr_...``, valid 24 h).
On the door, `facegate door register --site URL --token T` trades it, over the site's TLS, for the door's
credentials: an API token (scope ``door``, bound to that door), broker username and password, the
gallery key and the site's public signing key. The token is spent in one conditional UPDATE, so a
replay (or two doors racing with one token) gets nothing. Revoking a door revokes its API token and
removes its broker account at once; the site also ignores anything still arriving from it.
"""
from __future__ import annotations

import base64
import secrets

from facegate.edge.errors import SiteRequestError
from facegate.edge.fleet import topics
from facegate.edge.fleet.broker import password_hash
from facegate.edge.site import accounts
from facegate.edge.site.store import SiteStore, now

REGISTRATION_TTL_S = 24 * 3600
SITE_USER = "site"


def create_registration(store: SiteStore, door_id: str, ttl_s: float = REGISTRATION_TTL_S) -> str:
    """A one-time registration token for `door_id` (returned once; the store keeps its hash)."""
    token = "fgr_" + secrets.token_urlsafe(32)
    store.execute("INSERT INTO registrations (token_hash, door_id, created, expires) VALUES (?, ?, ?, ?)",
                  (accounts.digest(token), door_id, now(), now() + ttl_s))
    return token


def register(store: SiteStore, site, token: str, site_url: str, broker_host: str, broker_port: int) -> dict:
    """Spend a registration token: the door's credentials (given once), or 401 for a used, expired or
    unknown token and 403 for a revoked door."""
    if not isinstance(token, str) or not token.startswith("fgr_") or len(token) > 128:
        raise SiteRequestError("a registration token (fgr_...) is required", 401)
    t = now()
    with store.transaction():
        row = store.one("SELECT door_id FROM registrations WHERE token_hash=?", (accounts.digest(token),))
        spent = store.execute("UPDATE registrations SET used=? WHERE token_hash=? AND used IS NULL AND expires > ?",
                              (t, accounts.digest(token), t))
        if row is None or spent != 1:
            raise SiteRequestError("this registration token is unknown, expired or already used; ask the site "
                                   "admin for a new one", 401)
        door = store.one("SELECT id, door_group, revoked FROM doors WHERE id=?", (row["door_id"],))
        if door is None or door["revoked"] is not None:
            raise SiteRequestError("this door was revoked", 403)
        store.execute("UPDATE api_tokens SET revoked=? WHERE door_id=? AND revoked IS NULL", (t, door["id"]))
        api_token = accounts.create_token(store, f"door {door['id']}", ["door"], door_id=door["id"])
        password = secrets.token_urlsafe(24)
        store.execute("DELETE FROM door_secrets WHERE door_id=?", (door["id"],))
        store.execute("INSERT INTO door_secrets (door_id, broker_hash) VALUES (?, ?)", (door["id"], password_hash(password)))
    from facegate.edge.fleet.snapshots import public_key_b64
    return {"site_id": site.site_id, "site_url": site_url, "door_id": door["id"], "door_group": door["door_group"],
            "api_token": api_token, "broker_host": broker_host, "broker_port": broker_port,
            "broker_username": door["id"], "broker_password": password,
            "site_public_key": public_key_b64(site.signing_key),
            "gallery_key": base64.b64encode(site.gallery_key).decode()}


def revoke(store: SiteStore, door_id: str) -> None:
    with store.transaction():
        if store.execute("UPDATE doors SET revoked=? WHERE id=? AND revoked IS NULL", (now(), door_id)) != 1:
            raise SiteRequestError("no such door, or it is revoked already", 404)
        store.execute("UPDATE api_tokens SET revoked=? WHERE door_id=? AND revoked IS NULL", (now(), door_id))
        store.execute("DELETE FROM door_secrets WHERE door_id=?", (door_id,))
        store.execute("UPDATE registrations SET used=? WHERE door_id=? AND used IS NULL", (now(), door_id))


def broker_accounts(store: SiteStore, site) -> tuple[dict[str, str], str]:
    """(username -> password hash, ACL text) for the broker: the site and every registered, unrevoked door."""
    users = {SITE_USER: password_hash(site.broker_password)}
    doors = store.query("SELECT d.id, d.door_group FROM doors d JOIN door_secrets s ON s.door_id = d.id "
                        "WHERE d.revoked IS NULL ORDER BY d.id")
    for door in doors:
        users[door["id"]] = store.one("SELECT broker_hash FROM door_secrets WHERE door_id=?", (door["id"],))["broker_hash"]
    return users, topics.acl(site.site_id, SITE_USER, [(d["id"], d["door_group"] or None) for d in doors])
