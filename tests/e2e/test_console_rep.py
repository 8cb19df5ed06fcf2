"""A rep's day in a real browser: sign in, claim from the pool, log a follow-up, see the task move and the
stage change, release; and the refusal that follows, in words."""

from __future__ import annotations

import datetime as dt

from tests.e2e.browser import PHONE, no_serious_axe_findings, shoot
from tests.e2e.conftest import eventually


def test_a_reps_day(console):
    manager = console.person("manager", team="east", name="周经理")
    rep = console.person("rep", team="east", manager=manager, name="王芳")
    lead_id = console.lead(name="李雷", company="华东制造有限公司")

    page = console.page()
    # Straight to the pool: sign in first, then back to the pool.
    console.sign_in(page, rep, path="/pool")
    assert page.url.startswith(console.url + "/pool")
    row = page.locator(f"tr[data-lead-id='{lead_id}']")
    assert row.count() == 1
    no_serious_axe_findings(page)
    shoot(page, "pool")

    row.get_by_role("button").click()
    result = row.locator("[data-testid=claim-result]")
    result.wait_for()
    assert "已领取" in result.inner_text()

    tasks = page.locator("[data-testid=open-tasks]")

    def planned() -> bool:
        # followup plans the first contact once it has read the claim from the topic (milliseconds later).
        page.goto(f"{console.url}/leads/{lead_id}")
        return tasks.locator("[data-task-kind=first_contact]").count() == 1

    eventually(planned, timeout=10, interval=0.3)
    assert page.locator("[data-testid=stage]").inner_text() == "已分配"
    assert page.locator("[data-testid=owner]").inner_text().startswith(rep)

    tomorrow = (dt.datetime.now() + dt.timedelta(days=1)).strftime("%Y-%m-%dT10:00")
    page.select_option("#fu-channel", "phone")
    page.select_option("#fu-stage", "qualified")
    page.fill("#fu-summary", "首次电话：需要 40 个席位的报价")
    page.fill("#fu-pain", "现有系统丢线索")
    page.fill("#fu-next-at", tomorrow)
    form_key = page.locator("#follow-up-form input[name=form_key]").get_attribute("value")
    page.click("#follow-up-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "跟进已记录" in page.locator("[data-testid=flash]").inner_text()
    # The same form sent again (a double click, a resubmitted page) records nothing more.
    again = {
        "csrf_token": page.locator("#follow-up-form input[name=csrf_token]").get_attribute("value"),
        "form_key": form_key,
        "channel": "phone",
        "stage": "qualified",
        "summary": "首次电话：需要 40 个席位的报价",
        "pain_points": "现有系统丢线索",
        "next_follow_up_at": tomorrow,
    }
    assert page.request.post(f"{console.url}/leads/{lead_id}/follow-ups", form=again).ok
    page.reload()
    assert page.locator("[data-testid=timeline] .entry-follow_up").count() == 1
    assert page.locator("[data-testid=stage]").inner_text() == "需求确认"
    assert "首次电话：需要 40 个席位的报价" in page.locator("[data-testid=timeline]").inner_text()
    # The task moved on: the first contact is done, the agreed follow-up is next.
    assert tasks.locator("[data-task-kind=first_contact]").count() == 0
    assert tasks.locator("[data-task-kind=agreed_follow_up]").count() == 1
    no_serious_axe_findings(page)
    shoot(page, "lead")

    page.goto(console.url + "/leads")
    assert page.locator(f"tr[data-lead-id='{lead_id}']").count() == 1
    shoot(page, "my-leads")
    page.goto(console.url + "/")
    no_serious_axe_findings(page)
    shoot(page, "today")

    page.goto(f"{console.url}/leads/{lead_id}")
    page.get_by_role("button", name="释放到公海").click()
    page.wait_for_load_state("networkidle")
    assert "已释放到公海" in page.locator("[data-testid=flash]").inner_text()
    assert page.locator("[data-testid=owner]").inner_text() == "在公海中（无人负责）"

    # Claiming it again is refused in words: the cooldown, and until when.
    page.goto(console.url + "/pool")
    row = page.locator(f"tr[data-lead-id='{lead_id}']")
    row.get_by_role("button").click()
    result = row.locator("[data-testid=claim-result]")
    result.wait_for()
    assert "你释放过这条线索，可在" in result.inner_text() and "之后再次领取" in result.inner_text()


def test_the_rep_pages_fit_a_phone(console):
    rep = console.person("rep", name="陈静")
    lead_id = console.lead(name="韩梅梅", company="西南电子")
    page = console.page(PHONE)
    console.sign_in(page, rep, path="/pool")
    shoot(page, "phone-pool")
    page.goto(f"{console.url}/leads/{lead_id}")
    shoot(page, "phone-lead")
    # Nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
