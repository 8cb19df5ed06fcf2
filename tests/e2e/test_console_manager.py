"""A manager's day in a real browser: the funnel moves after a won lead, a lead is reassigned, a rep is
offboarded after a confirmation that says how many leads move. And the admin's people page."""

from __future__ import annotations

import httpx

from tests.e2e.browser import PASSWORD, no_serious_axe_findings, shoot
from tests.e2e.conftest import auth, eventually


def claim(console, lead_id: str, rep: str) -> None:
    """Claimed and contacted once (the e2e first-contact SLA is seconds: uncontacted, it would be recycled mid-test)."""
    url = f"{console.services.url('assignment')}/leads/{lead_id}/claim"
    eventually(lambda: httpx.post(url, headers=auth("rep", rep)).status_code == 200)
    contact = {"channel": "phone", "summary": "首次联系"}
    url = f"{console.services.url('followup')}/leads/{lead_id}/follow-ups"
    eventually(lambda: httpx.post(url, json=contact, headers=auth("rep", rep)).status_code == 201)


def owner_of(console, lead_id: str) -> str | None:
    url = f"{console.services.url('assignment')}/leads/{lead_id}/ownership"
    return httpx.get(url, headers=auth("manager", "m")).json()["owner"]


def won_in_funnel(page) -> int:
    return int(page.locator("[data-testid=won-all]").inner_text())


def test_a_managers_day(console):
    manager = console.person("manager", team="east", name="周经理")
    leaving = console.person("rep", team="east", manager=manager, name="张伟")
    staying = console.person("rep", team="east", manager=manager, name="刘洋")
    to_win, to_move, to_hand_over = (console.lead(name=n) for n in ("赵敏", "钱进", "孙丽"))
    for lead_id in (to_win, to_move, to_hand_over):
        claim(console, lead_id, leaving)

    page = console.page()
    console.sign_in(page, manager, path="/funnel")
    assert page.url.startswith(console.url + "/funnel")
    before = won_in_funnel(page)

    # The manager records the win on the lead's page (managers may work their team's leads).
    page.goto(f"{console.url}/leads/{to_win}")
    page.select_option("#fu-stage", "won")
    page.fill("#fu-summary", "签约：年度合同")
    page.fill("#fu-amount", "120000")
    page.click("#follow-up-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=stage]").inner_text() == "已成交"

    def funnel_moved() -> bool:
        page.goto(console.url + "/funnel")
        return won_in_funnel(page) == before + 1

    eventually(funnel_moved, timeout=20, interval=0.5)
    page.locator("#funnel-chart svg").first.wait_for()  # ECharts drew it (from the local file)
    no_serious_axe_findings(page)
    shoot(page, "funnel")

    # Reassign one of the leaving rep's leads to a colleague.
    page.goto(f"{console.url}/team/{leaving}")
    row = page.locator(f"tr[data-lead-id='{to_move}']")
    row.locator("select").select_option(staying)
    row.get_by_role("button").click()
    page.wait_for_load_state("networkidle")
    assert f"线索已改派给 {staying}" in page.locator("[data-testid=flash]").inner_text()
    assert owner_of(console, to_move) == staying

    # Offboard: the confirmation says how many leads move and to whom, and only then does anything happen.
    page.goto(console.url + "/team")
    assert page.locator(f"[data-testid=open-{leaving}]").inner_text() == "1"
    no_serious_axe_findings(page)
    shoot(page, "team")
    page.locator(f"tr[data-rep='{leaving}']").get_by_role("link", name="办理离职").click()
    page.select_option("#o-to", staying)
    page.get_by_role("button", name="提交").click()
    confirm = page.locator("[data-testid=offboard-confirm]").inner_text()
    assert confirm == f"张伟 名下 1 条未结线索将转给 {staying}，账号将被停用。确认吗？"
    assert owner_of(console, to_hand_over) == leaving  # nothing moved before the confirmation
    shoot(page, "offboard-confirm")
    page.get_by_role("button", name="确认离职并转移线索").click()
    page.wait_for_load_state("networkidle")
    # Every customer moved: the open lead and the won one.
    assert page.locator("[data-testid=flash]").inner_text() == f"张伟 已离职，2 条线索已转给 {staying}。"
    assert owner_of(console, to_hand_over) == staying

    # The person who left can no longer sign in.
    other = console.page()
    console.sign_in(other, leaving)
    assert "该账号已停用" in other.locator("[data-testid=login-error]").inner_text()


def test_the_admin_adds_moves_and_deactivates_people(console):
    admin = console.person("admin", name="系统管理员")
    manager = console.person("manager", team="north", name="北区经理")
    page = console.page()
    console.sign_in(page, admin)
    assert page.url == console.url + "/admin/people"
    page.fill("#p-username", f"new-{admin[-6:]}")
    page.fill("#p-name", "新同事")
    page.select_option("#p-role", "rep")
    page.fill("#p-team", "north")
    page.select_option("#p-manager", manager)
    page.fill("#p-password", PASSWORD)
    page.get_by_role("button", name="新增人员").click()
    page.wait_for_load_state("networkidle")
    newcomer = f"new-{admin[-6:]}"
    assert f"已新增 {newcomer}" in page.locator("[data-testid=flash]").inner_text()
    row = page.locator(f"tr[data-user='{newcomer}']")
    assert "新同事" in row.inner_text()

    # The same username again is refused in words, and the form keeps what was typed.
    page.fill("#p-username", newcomer)
    page.fill("#p-password", PASSWORD)
    page.get_by_role("button", name="新增人员").click()
    assert f"用户名 {newcomer} 已被使用" in page.locator("[data-testid=people-error]").inner_text()

    row = page.locator(f"tr[data-user='{newcomer}']")
    row.get_by_role("button", name=f"停用 {newcomer}").click()
    page.wait_for_load_state("networkidle")
    assert f"已停用 {newcomer}" in page.locator("[data-testid=flash]").inner_text()
    no_serious_axe_findings(page)
    shoot(page, "people")

    listed = console.services.run("services.console", "users", "list", "--all")
    assert newcomer in listed.stdout
