"""The web admin in a real browser: Debian's Chromium driven by Playwright, against `facegate site serve`.

The server is the real command in its own process on a loopback port. The test logs in, enrols a
person from LFW photos, finds them, renames them, registers a door whose events then show up, removes
the person, and fails on any console error or page error. Screenshots of each page go to a temporary
folder, or to $FACEGATE_SCREENSHOTS (the README's docs/img ones were made that way).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the site server needs the `site` extra")
playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright from PyPI (dev extra)")
import httpx2 as httpx  # noqa: E402
from servers import free_port  # noqa: E402

PASSWORD = "correct horse battery"
BROWSERS = ("/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium", "/usr/bin/chromium-headless-shell")


def browser_path() -> str:
    for path in BROWSERS:
        if Path(path).exists():
            return path
    pytest.skip("Chromium is not installed (Debian chromium-headless-shell or chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("browser") / "site"
    env = {**os.environ, "FACEGATE_SITE_ADMIN_PASSWORD": PASSWORD}
    exe = [sys.executable, "-m", "facegate.apps.cli"]
    subprocess.run([*exe, "site", "init", "--data", str(data)], env=env, check=True, capture_output=True)
    port = free_port()
    log = open(data.parent / "serve.log", "w")
    proc = subprocess.Popen([*exe, "site", "serve", "--data", str(data), "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
            if proc.poll() is not None:
                raise RuntimeError((data.parent / "serve.log").read_text())
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_admin_pages_in_chromium(server, lfw_images, tmp_path):
    shots = Path(os.environ.get("FACEGATE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path(), args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

            page.goto(server + "/people")
            assert page.url.endswith("/login")
            page.screenshot(path=str(shots / "site-login.png"))
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            assert page.url.endswith("/people") and "Nobody is enrolled yet" in page.content()

            page.click("text=Enrol a person")
            page.fill("input[name=name]", "Alejandro Toledo")
            page.set_input_files("input[name=photos]", [str(x) for x in lfw_images["Alejandro_Toledo"][:4]])
            page.fill("input[name=groups]", "lobby")
            page.click("form.card button[type=submit]")
            status = page.inner_text("[role=status]")
            assert re.search(r"Enrolled Alejandro Toledo with [1-4] photo\(s\)", status), status
            rows = page.locator("table.photos tbody tr")
            assert rows.count() == 4
            assert "live (" in page.inner_text("table.photos")
            page.screenshot(path=str(shots / "site-enrol.png"), full_page=True)

            page.goto(server + "/people")
            page.fill("input[name=q]", "toledo")
            page.click("form.search button[type=submit]")
            page.screenshot(path=str(shots / "site-people.png"), full_page=True)
            page.click("text=Alejandro Toledo")
            person_url = page.url
            assert re.search(r"/people/[0-9a-f]{12}$", person_url)
            page.fill("form[action$='/rename'] input[name=name]", "Alejandro Toledo Manrique")
            page.click("form[action$='/rename'] button")
            assert page.inner_text("h1") == "Alejandro Toledo Manrique"
            page.screenshot(path=str(shots / "site-person.png"), full_page=True)
            person_id = person_url.rsplit("/", 1)[1]

            page.goto(server + "/doors")
            page.fill("input[name=name]", "Front door")
            page.fill("input[name=door_group]", "lobby")
            page.click("form.card button")
            command = page.inner_text("code.secret")
            assert command.startswith(f"facegate door register --site {server} --token fgr_")
            creds = httpx.post(server + "/v1/door/register", json={"token": command.rsplit(" ", 1)[1]}).json()
            door_token = creds["api_token"]
            heartbeat = {"gallery_version": 3, "model": "facenet-student-int8", "liveness_mode": "passive"}
            head = {"Authorization": f"Bearer {door_token}"}
            assert httpx.post(server + "/v1/door/heartbeat", headers=head, json=heartbeat).status_code == 200
            entry = {"seq": 1, "time": "2026-12-06T09:15:00.000+00:00", "event": "decision", "decision": "accept",
                     "person": person_id, "score": 0.83}
            spoof = {"seq": 2, "time": "2026-12-06T09:16:00.000+00:00", "event": "decision", "decision": "reject",
                     "score": 0.02, "reason": "presentation attack suspected"}
            assert httpx.post(server + "/v1/door/events", headers=head,
                              json={"events": [entry, spoof]}).json() == {"accepted": 2, "duplicates": 0}
            page.goto(server + "/doors")
            assert "facenet-student-int8" in page.inner_text("table")
            page.screenshot(path=str(shots / "site-doors.png"), full_page=True)

            page.goto(server + "/events")
            assert page.locator("tbody tr").count() == 2
            page.select_option("select[name=decision]", "accept")
            page.click("form.filters button")
            assert page.locator("tbody tr").count() == 1 and "Alejandro Toledo Manrique" in page.inner_text("tbody")
            page.screenshot(path=str(shots / "site-events.png"), full_page=True)

            page.goto(server + "/accounts")
            page.screenshot(path=str(shots / "site-accounts.png"), full_page=True)
            page.goto(server + "/docs")
            assert "/v1/identify" in page.inner_text("table")
            page.screenshot(path=str(shots / "site-api.png"), full_page=True)

            page.goto(person_url)
            page.check("form[action$='/remove'] input[name=confirm]")
            page.click("form[action$='/remove'] button")
            assert "Erasure receipt" in page.content()
            page.goto(server + "/trail")
            trail = page.inner_text("main")
            assert "Chain verified" in trail and "person-erase" in trail and "Toledo" not in trail
            page.screenshot(path=str(shots / "site-trail.png"), full_page=True)
            page.goto(server + "/people")
            assert "Nobody is enrolled yet" in page.content()
        finally:
            browser.close()
    assert not problems, problems
