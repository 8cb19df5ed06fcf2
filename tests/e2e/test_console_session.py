"""Sign-in and the session in a real browser: a wrong password, the rate limit, CSRF refusals, an expired
session that comes back where it was, and the zh/en switch."""

from __future__ import annotations

import httpx
import psycopg

from tests.e2e.browser import PASSWORD, no_serious_axe_findings, shoot
from tests.e2e.conftest import auth


def session_cookies(page) -> list[dict]:
    return [c for c in page.context.cookies() if c["name"] == "lf_session"]


def test_a_wrong_password_says_so_and_creates_no_session(console):
    rep = console.person("rep")
    page = console.page()
    page.goto(console.url + "/")
    assert page.url.startswith(console.url + "/login")
    no_serious_axe_findings(page)
    shoot(page, "login")
    console.sign_in(page, rep, password="not-the-password")
    assert page.locator("[data-testid=login-error]").inner_text() == "用户名或密码错误，请重试。"
    assert session_cookies(page) == []
    console.sign_in(page, rep)
    (cookie,) = session_cookies(page)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_failed_sign_ins_are_limited_per_user(console):
    rep = console.person("rep")
    page = console.page()
    for _ in range(5):
        console.sign_in(page, rep, password="wrong-password")
    console.sign_in(page, rep)  # even the right password, until the window passes
    assert "登录失败次数过多" in page.locator("[data-testid=login-error]").inner_text()
    assert session_cookies(page) == []


def test_a_state_change_without_the_sessions_csrf_token_is_refused_and_changes_nothing(console):
    rep = console.person("rep")
    lead_id = console.lead()
    page = console.page()
    console.sign_in(page, rep, path="/pool")
    row = page.locator(f"tr[data-lead-id='{lead_id}']")
    # As a forged page would: the right form, a wrong token (and no htmx).
    row.locator("input[name=csrf_token]").evaluate("input => { input.value = 'forged'; }")
    row.locator("form").evaluate("form => form.submit()")
    page.wait_for_load_state("networkidle")
    assert "CSRF" in page.locator("[data-testid=refused]").inner_text()
    ownership = httpx.get(f"{console.services.url('assignment')}/leads/{lead_id}/ownership", headers=auth("manager", "m"))
    assert ownership.json()["owner"] is None
    # A cross-site POST carries no token at all.
    forged = page.request.post(console.url + f"/pool/{lead_id}/claim", form={"x": "1"}, max_redirects=0)
    assert forged.status == 403
    # The sign-in form checks its own token too.
    bare = httpx.post(console.url + "/login", data={"username": rep, "password": PASSWORD, "csrf_token": "x"})
    assert bare.status_code == 403 and "lf_session" not in bare.cookies


def test_an_expired_session_signs_in_again_and_comes_back(console):
    rep = console.person("rep")
    page = console.page()
    console.sign_in(page, rep, path="/leads")
    with psycopg.connect(console.services.env["LEADFLOW_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE console.sessions SET last_seen = last_seen - interval '2 hours' WHERE username = %s", (rep,))
    page.get_by_role("navigation").get_by_role("link", name="公海").click()
    page.wait_for_load_state("networkidle")
    assert page.url.startswith(console.url + "/login")
    assert "会话已过期" in page.inner_text("main")
    page.fill("#password", PASSWORD)
    page.fill("#username", rep)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.url == console.url + "/pool"


def test_switching_between_chinese_and_english(console):
    rep = console.person("rep")
    page = console.page()
    console.sign_in(page, rep, path="/pool")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "公海"
    page.get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Public pool"
    page.get_by_role("navigation").get_by_role("link", name="My leads").click()  # the choice is remembered
    assert page.locator("h1").inner_text() == "My leads"
    no_serious_axe_findings(page)
    shoot(page, "my-leads-en")
    page.get_by_role("link", name="中文").click()
    assert page.locator("h1").inner_text() == "我的线索"
