"""The live feed and the person's time zone, in a real browser: an assignment made elsewhere appears on the rep's
open page without a reload (server-sent events fed from the topic); times show in the browser's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import expect

from tests.e2e.browser import DESKTOP, no_serious_axe_findings, shoot
from tests.e2e.conftest import auth, eventually


def test_a_new_assignment_appears_on_the_reps_open_page(console):
    manager = console.person("manager", team="south", name="南区经理")
    rep = console.person("rep", team="south", manager=manager, name="马丽")
    lead_id = console.lead(name="沈腾")
    page = console.page()
    console.sign_in(page, rep)
    expect(page.locator("#live-empty")).to_be_visible()
    page.wait_for_timeout(500)  # the page's EventSource is connected
    assigned = httpx.post(
        f"{console.services.url('assignment')}/leads/{lead_id}/assign", json={"rep_id": rep}, headers=auth("manager", manager)
    )
    assert assigned.status_code == 200, assigned.text
    news = page.locator("#live-feed .news-assigned")
    expect(news).to_contain_text("新线索分配给你", timeout=15_000)
    assert news.locator("a").get_attribute("href") == f"/leads/{lead_id}"
    expect(page.locator("#live-empty")).to_be_hidden()


def test_times_show_in_the_browsers_time_zone(console):
    rep = console.person("rep")
    lead_id = console.lead(name="贾玲")
    context = console.browser.new_context(viewport=DESKTOP, locale="en-US", timezone_id="America/New_York")
    console.contexts.append(context)
    page = context.new_page()
    page.on("pageerror", lambda error: console.errors.append(str(error)))
    console.sign_in(page, rep)  # the sign-in page tells the console the browser's zone
    page.goto(f"{console.url}/leads/{lead_id}")

    def captured_at() -> str:
        view = httpx.get(f"{console.services.url('analytics')}/customers/{lead_id}", headers=auth("manager", "m"))
        assert view.status_code == 200
        return view.json()["captured_at"]

    moment = datetime.fromisoformat(eventually(captured_at).replace("Z", "+00:00"))
    expected = moment.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M")
    entry = page.locator("[data-testid=timeline] .entry-captured time")
    assert entry.inner_text() == expected


def test_the_reports_page_and_keyboard_navigation(console):
    manager = console.person("manager")
    page = console.page()
    console.sign_in(page, manager, path="/reports")
    assert page.locator("h1").inner_text() == "报表"
    no_serious_axe_findings(page)
    shoot(page, "reports")
    # The first Tab reaches the skip link, which takes the keyboard past the navigation to the page itself.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
