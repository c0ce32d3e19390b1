"""A site on disk: its folder, server key, store and admin trail (what `facegate site init` makes).

    SITE/            mode 0700
      server.key     32 random bytes, 0600: seals templates and crops at rest
      site.db        the embedded SQLite store (unless the site uses PostgreSQL)
      site.json      site id and the store's URL when it is not the embedded one (no secrets)
      trail/         the admin trail (audit log format) and its key
      gallery.key    32 random bytes, 0600: the key of the snapshots sent to doors (doors get it at registration)
      signing.key    Ed25519 private key, 0600: signs snapshots (doors pin its public half)
      broker.secret  the site's MQTT password, 0600; broker/ holds mosquitto's generated files
"""
from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from facegate.edge.errors import KeyFileError, SiteError
from facegate.edge.gallery.keys import write_keyfile
from facegate.edge.site import accounts
from facegate.edge.site.sealing import Sealer
from facegate.edge.site.store import SiteStore
from facegate.edge.site.trail import AdminTrail

log = logging.getLogger(__name__)

KEY_FILE = "server.key"
GALLERY_KEY_FILE = "gallery.key"     # the doors' gallery key (sent to each door at registration)
SIGNING_KEY_FILE = "signing.key"     # Ed25519: signs gallery snapshots and commands
BROKER_SECRET_FILE = "broker.secret"  # the site's own MQTT password
DB_FILE = "site.db"
INFO_FILE = "site.json"


@dataclass
class Site:
    """An opened site: what the server and the commands work with."""

    folder: Path
    site_id: str
    store: SiteStore
    sealer: Sealer
    trail: AdminTrail

    def close(self) -> None:
        self.store.close()

    @property
    def gallery_key(self) -> bytes:
        return (self.folder / GALLERY_KEY_FILE).read_bytes()

    @property
    def signing_key(self):
        from facegate.edge.fleet.snapshots import load_signing_key
        return load_signing_key(self.folder / SIGNING_KEY_FILE)

    @property
    def broker_password(self) -> str:
        return (self.folder / BROKER_SECRET_FILE).read_text().strip()


def ensure_fleet_keys(folder: Path) -> None:
    """The fleet's keys, made once (sites created before the fleet get them when next opened)."""
    from facegate.edge.fleet.snapshots import new_signing_key
    if not (folder / GALLERY_KEY_FILE).exists():
        write_keyfile(folder / GALLERY_KEY_FILE)
    if not (folder / SIGNING_KEY_FILE).exists():
        new_signing_key(folder / SIGNING_KEY_FILE)
    if not (folder / BROKER_SECRET_FILE).exists():
        fd = os.open(folder / BROKER_SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")


def _store_url(folder: Path, db_url: str | None) -> str:
    return db_url or f"sqlite:///{folder / DB_FILE}"


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def init_site(folder: str | Path, admin: str, password: str, db_url: str | None = None) -> Site:
    """Create a site: folder, server key, store (migrated), site id, first admin account, trail."""
    folder = Path(folder)
    if (folder / INFO_FILE).exists():
        raise SiteError(f"{folder} already holds a site (site.json); serve it, or choose another --data folder")
    if folder.exists() and not folder.is_dir():
        raise SiteError(f"{folder} is a file; --data must be a folder")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    accounts.check_password_rules(password)
    try:
        write_keyfile(folder / KEY_FILE)
    except KeyFileError as exc:
        raise SiteError(f"server key: {exc}") from exc
    site_id = secrets.token_hex(8)
    ensure_fleet_keys(folder)
    store = SiteStore(_store_url(folder, db_url))
    if store.schema_version() != 0:
        store.close()
        raise SiteError("that database already holds a facegate site; give an empty database for a new site")
    store.migrate()
    store.set_meta("site_id", site_id)
    account = accounts.create_account(store, admin, password, "admin")
    info = {"site_id": site_id, **({"db": _redact(db_url)} if db_url else {})}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    site = Site(folder, site_id, store, Sealer.from_keyfile(folder / KEY_FILE), AdminTrail(folder, site_id))
    site.trail.record(account.username, "site-init", site=site_id, store=store.dialect)
    site.trail.record(account.username, "account-create", account=account.id, role="admin")
    return site


def _redact(url: str) -> str:
    """A store URL without its password (site.json is not a secret file)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


def open_site(folder: str | Path, db_url: str | None = None) -> Site:
    """Open an existing site (migrating its store to this release's schema)."""
    folder = Path(folder)
    info_path = folder / INFO_FILE
    if not info_path.is_file():
        raise SiteError(f"{folder} is not a site folder (no site.json); create one with: "
                        f"facegate site init --data {folder}")
    try:
        info = json.loads(info_path.read_text())
        site_id = str(info["site_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SiteError(f"{info_path} is damaged ({exc}); restore it from a backup") from exc
    sealer = Sealer.from_keyfile(folder / KEY_FILE)
    ensure_fleet_keys(folder)
    store = SiteStore(_store_url(folder, db_url))
    try:
        store.migrate()
        stored = store.get_meta("site_id")
        if stored != site_id:
            raise SiteError(f"the store belongs to site {stored}, not to this folder's site {site_id}: "
                            "wrong --db for this --data folder")
    except BaseException:
        store.close()
        raise
    return Site(folder, site_id, store, sealer, AdminTrail(folder, site_id))
