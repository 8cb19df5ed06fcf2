"""New lead with 查重 answered inline, and the CSV import with per-row errors, in a real browser."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.e2e.browser import no_serious_axe_findings, shoot


def phone() -> str:
    return "138" + str(uuid.uuid4().int)[:8]


def fill_lead(page, name: str, number: str) -> None:
    page.fill("#n-name", name)
    page.fill("#n-phone", number)
    page.fill("#n-company", "东方贸易")


def test_a_new_lead_and_the_duplicate_check_inline(console):
    rep = console.person("rep", name="吴磊")
    colleague = console.person("rep", name="郑爽")
    page = console.page()
    console.sign_in(page, rep, path="/leads/new")
    number = phone()
    fill_lead(page, "冯巩", number)
    page.check("#n-claim")  # 报备: reported for myself
    page.get_by_role("button", name="提交").click()
    result = page.locator("[data-testid=capture-result]")
    result.wait_for()
    assert "线索已录入" in result.inner_text()
    assert page.url.endswith("/leads/new")  # answered in place

    # The same phone again, written differently: it exists, and it is mine.
    fill_lead(page, "冯巩", f"+86 {number[:3]} {number[3:7]} {number[7:]}")
    page.get_by_role("button", name="提交").click()
    expect(result).to_contain_text("查重")
    assert result.inner_text().startswith("查重：该客户已存在，是你的线索。")
    no_serious_axe_findings(page)
    shoot(page, "new-lead-duplicate")

    # A colleague learns that it exists and is someone else's, nothing more.
    other = console.page()
    console.sign_in(other, colleague, path="/leads/new")
    fill_lead(other, "冯巩", number)
    other.get_by_role("button", name="提交").click()
    answer = other.locator("[data-testid=capture-result]")
    answer.wait_for()
    assert answer.inner_text().strip() == "查重：该客户已存在，由同事负责。"
    assert answer.locator("a").count() == 0


def test_a_csv_import_reports_each_rows_fate(console, tmp_path):
    rep = console.person("rep")
    good = phone()
    csv = tmp_path / "leads.csv"
    csv.write_text(f"姓名,手机,公司\n李明,{good},北方物流\n王刚,{good},北方物流\n赵六,not-a-phone,南粤贸易\n", encoding="utf-8")
    page = console.page()
    console.sign_in(page, rep, path="/import")
    page.set_input_files("#i-file", str(csv))
    page.get_by_role("button", name="上传并导入").click()
    result = page.locator("[data-testid=import-result]").first
    result.wait_for()
    assert result.inner_text() == "共 3 行：新建 1，重复 1，无效 1。"
    assert "第 4 行" in page.locator("#import-result table").inner_text()
    no_serious_axe_findings(page)
    shoot(page, "import")
