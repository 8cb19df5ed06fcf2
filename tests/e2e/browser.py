"""A real browser for the console's tests: Debian's chromium, driven by Playwright (no browser download).

``console_page`` fails its test on any JavaScript error or console error of the page. ``shoot`` writes the
screenshots of the main pages into docs/console/, which docs/console.md shows. ``axe`` runs axe-core (the
npm package, injected from the local file) and returns its serious and critical findings.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, Services, auth, eventually

CHROMIUM = os.environ.get("LEADFLOW_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "services" / "console" / "web" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "docs" / "console"
PASSWORD = "s3cret-passw0rd"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


# Per module, not per session: Playwright's sync API keeps an event loop running in this thread while it is
# open, and later tests that call asyncio.run() would fail under it.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Console:
    services: Services
    browser: object
    errors: list[str] = field(default_factory=list)
    contexts: list[object] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.services.url("console")

    def person(self, role: str, *, team: str | None = None, manager: str | None = None, name: str | None = None) -> str:
        """A new person in the directory, added with the CLI as an operator would."""
        username = f"{role}-{uuid.uuid4().hex[:6]}"
        args = ["services.console", "users", "add", "--username", username, "--password", PASSWORD, "--role", role]
        for flag, value in (("--team", team), ("--manager", manager), ("--display-name", name)):
            if value:
                args += [flag, value]
        done = self.services.run(*args)
        assert done.returncode == 0, done.stderr
        return username

    def page(self, viewport: dict[str, int] = DESKTOP, lang: str | None = None):
        context = self.browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai")  # type: ignore[attr-defined]
        self.contexts.append(context)
        if lang:
            context.add_cookies([{"name": "lf_lang", "value": lang, "url": self.url}])
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._console_message(page, message))
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    def _console_message(self, page, message) -> None:
        if message.type != "error":
            return
        # A refused page (401 wrong password, 403 CSRF, 409 …) is answered with its status on purpose; Chromium
        # logs that status of the document itself as an error. Anything else failing to load is a real error.
        if message.text.startswith("Failed to load resource") and message.location.get("url") == page.url:
            return
        self.errors.append(f"{page.url}: {message.text} ({message.location.get('url')})")

    def sign_in(self, page, username: str, password: str = PASSWORD, path: str = "/") -> None:
        page.goto(self.url + path)
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")

    def lead(self, **fields: str) -> str:
        """A lead captured through intake, once assignment has it in the pool."""
        body = {
            "name": fields.pop("name", "李雷"),
            "phone": "139" + str(uuid.uuid4().int)[:8],
            "source": fields.pop("source", "trade_show"),
            "company": fields.pop("company", "华东制造有限公司"),
            "industry": "manufacturing",
            "region": "east",
            **fields,
        }
        response = httpx.post(f"{self.services.url('intake')}/leads", json=body, headers=auth("integration", "crm"))
        assert response.status_code == 201, response.text
        lead_id = response.json()["lead_id"]

        def pooled() -> bool:
            seen = httpx.get(f"{self.services.url('assignment')}/leads/{lead_id}/ownership", headers=auth("manager", "m"))
            return seen.status_code == 200

        eventually(pooled)
        return lead_id

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def console(services, browser) -> Iterator[Console]:
    running = Console(services, browser)
    try:
        yield running
    finally:
        running.close()
    assert not running.errors, "JavaScript errors in the console's pages:\n" + "\n".join(running.errors)


def shoot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    # Evaluated, not added as a <script>: the console's Content-Security-Policy refuses inline scripts, rightly.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def no_serious_axe_findings(page) -> None:
    findings = axe(page)
    assert not findings, json.dumps(findings, ensure_ascii=False, indent=1)
