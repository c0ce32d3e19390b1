"""`facegate door register`: trade a one-time registration token for the door's fleet credentials.

Over the site's HTTPS (give `--ca-file` for a site with its own certificate authority); the answer is
written to ``<out>/fleet.json`` and ``<out>/gallery.key``, both 0600. The token cannot be used twice.
"""
from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from facegate.edge.durable import atomic_write
from facegate.edge.errors import SiteError
from facegate.edge.fleet.agent import FleetCredentials


def register_door(site_url: str, token: str, out: Path, ca_file: Path | None = None) -> FleetCredentials:
    out = Path(out)
    if (out / "fleet.json").exists():
        raise SiteError(f"{out / 'fleet.json'} exists: this door is registered already (remove it to register again)")
    url = site_url.rstrip("/") + "/v1/door/register"
    if not url.startswith("https://") and not url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SiteError("register over https:// (the answer holds the door's keys); plain http only on loopback")
    request = urllib.request.Request(url, data=json.dumps({"token": token}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        raise SiteError(f"the site refused the registration ({exc.code}): {reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SiteError(f"cannot reach the site at {site_url}: {getattr(exc, 'reason', exc)}") from exc
    out.mkdir(parents=True, exist_ok=True)
    key_path = out / "gallery.key"
    atomic_write(key_path, base64.b64decode(body.pop("gallery_key")))      # 0600, fsynced
    creds = FleetCredentials(**body, gallery_key_file=str(key_path), ca_file=str(ca_file) if ca_file else None)
    creds.save(out / "fleet.json")
    return creds
