"""A site on disk: its folder, server key, store and admin trail (what `facegate site init` makes).

    SITE/            mode 0700
      server.key     32 random bytes, 0600: seals templates and crops at rest
      site.db        the embedded SQLite store (unless the site uses PostgreSQL)
      site.json      site id and the store's URL when it is not the embedded one (no secrets)
      trail/         the admin trail (audit log format) and its key
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
