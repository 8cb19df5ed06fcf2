"""intake over HTTP: a messy spreadsheet imported twice, by the endpoint and by the CLI; batches; bad input."""

import json
import subprocess
import sys
import uuid

import httpx

from tests.e2e.conftest import ROOT, auth, token


def mobile() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


def messy_csv(phones: list[str]) -> bytes:
    a, b, c, d = phones
    rows = [
        "姓名,手机,公司,行业,地区,来源,职位,邮箱,微信,需求",
        f"张三,{a[:3]} {a[3:7]} {a[7:]},甲制造有限公司,汽车制造,上海,展会,采购总监,ZHANG@Example.com,同手机,产线 MES",
        f'"王, 五",+86 {b[:3]}-{b[3:7]}-{b[7:]},乙公司,软件,北京,官网,CTO,,wx_wangwu,"多行\n需求"',
        "缺电话,,丙公司,,,,,,,",
        "坏号码,12345,丁公司,,,,,,,",
        "",
        f"李四,0086 {c},戊公司,,,,,not-an-email,,",
        f"赵六,{d},己公司,,,,,,,",
        f"重复的张三,+86{a},甲制造有限公司,,,,,,,",
    ]
    return "\ufeff".encode() + "\r\n".join(rows).encode() + b"\r\n"


def test_a_messy_csv_imports_once_with_per_row_errors(services):
    url = services.url("intake")
    phones = [mobile() for _ in range(4)]
    headers = {**auth("manager", "ops-1"), "content-type": "text/csv"}
    first = httpx.post(f"{url}/leads/import", content=messy_csv(phones), headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["created"], report["duplicates"], report["rows"]) == (3, 1, 7)
    assert [(i["row"], [e["field"] for e in i["errors"]]) for i in report["invalid"]] == [
        (4, ["phone"]),
        (5, ["phone"]),
        (7, ["email"]),
    ]

    lead_id = httpx.post(
        f"{url}/leads", json={"name": "x", "phone": phones[0], "source": "api"}, headers=auth("rep", "r")
    ).json()["lead_id"]
    lead = httpx.get(f"{url}/leads/{lead_id}", headers=auth("manager", "m")).json()
    assert (lead["name"], lead["phone"], lead["source"], lead["email"]) == (
        "张三",
        f"+86{phones[0]}",
        "trade_show",
        "zhang@example.com",
    )
    assert lead["wechat"] == lead["phone"] and lead["grade"] in ("A", "B") and lead["captured_by"] == "ops-1"
    assert [r["source"] for r in lead["recaptures"]] == ["import", "api"]  # the in-file duplicate, then the API attempt

    again = httpx.post(f"{url}/leads/import", content=messy_csv(phones), headers=headers, timeout=30).json()
    assert (again["created"], again["duplicates"]) == (0, 4)
    lead = httpx.get(f"{url}/leads/{lead_id}", headers=auth("manager", "m")).json()
    assert len(lead["recaptures"]) == 2  # re-importing the same rows is not a new capture attempt


def test_gb18030_files_and_bad_uploads(services):
    url = services.url("intake")
    phone = mobile()
    headers = auth("integration", "erp")
    gbk = f"姓名,电话,公司\n陈七,{phone},庚公司\n".encode("gb18030")
    r = httpx.post(f"{url}/leads/import", content=gbk, headers={**headers, "content-type": "text/csv"})
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    no_phone = httpx.post(f"{url}/leads/import", content=b"name,company\nx,y\n", headers={**headers, "content-type": "text/csv"})
    assert no_phone.status_code == 422 and no_phone.json()["errors"][0]["field"] == "header"
    wrong_type = httpx.post(f"{url}/leads/import", content=b"{}", headers={**headers, "content-type": "application/json"})
    assert wrong_type.status_code == 415 and wrong_type.headers["content-type"] == "application/problem+json"
    bad_charset = httpx.post(f"{url}/leads/import", content=gbk, headers={**headers, "content-type": "text/csv; charset=klingon"})
    assert bad_charset.status_code == 415


def test_the_cli_imports_a_file_with_progress_and_a_rerun_creates_nothing(services, tmp_path):
    phones = [mobile() for _ in range(25)]
    path = tmp_path / "leads.csv"
    path.write_bytes(
        ("name,phone,source\n" + "".join(f"Lead {n},{p},referral\n" for n, p in enumerate(phones)) + "bad,1,x\n").encode(
            "gb18030"
        )
    )
    command = [sys.executable, "-m", "services.intake.importer", str(path), "--url", services.url("intake"), "--rows", "10"]
    env = {"LEADFLOW_TOKEN": token("manager", "ops-2"), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    totals = json.loads(first.stdout)
    assert (totals["created"], totals["duplicates"], totals["invalid"][0]["row"]) == (25, 0, 27)
    assert "25 created" in first.stderr and "100.0%" in first.stderr
    second = json.loads(
        subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    )
    assert (second["created"], second["duplicates"]) == (0, 25)


def test_a_batch_answers_each_item_in_order(services):
    url = services.url("intake")
    a, b = mobile(), mobile()
    items = [
        {"name": "甲", "phone": a, "source": "api", "title": "采购经理", "email": "jia@example.com"},
        {"name": "乙", "phone": "12", "source": "api"},
        {"name": "甲", "phone": f"+86 {a}", "source": "trade_show"},
        "not an object",
        {"name": "丙", "phone": b, "source": "api", "email": "JIA@example.com"},
    ]
    r = httpx.post(f"{url}/leads/batch", json=items, headers=auth("integration", "crm"))
    assert r.status_code == 200, r.text
    results = r.json()
    assert [x["status"] for x in results] == ["created", "invalid", "duplicate", "invalid", "created"]
    assert results[2]["lead_id"] == results[0]["lead_id"] and results[1]["errors"][0]["field"] == "phone"
    assert results[4]["possible_duplicates"] == [results[0]["lead_id"]]
    too_many = httpx.post(f"{url}/leads/batch", json=[{}] * 1001, headers=auth("integration", "crm"))
    assert too_many.status_code == 422


def test_signals_rescore_and_reps_report_leads_for_themselves(services):
    url = services.url("intake")
    body = {"name": "周八", "phone": mobile(), "source": "web_form", "title": "总监", "claim": True}
    created = httpx.post(f"{url}/leads", json=body, headers=auth("rep", "rep-8"))
    assert created.status_code == 201, created.text
    lead_id, score = created.json()["lead_id"], created.json()["score"]
    signal = httpx.post(f"{url}/leads/{lead_id}/signals", json={"signal": "requested_demo"}, headers=auth("integration", "web"))
    assert signal.status_code == 200, signal.text
    assert signal.json()["previous_score"] == score and signal.json()["score"] > score
    assert signal.json()["reasons"][-1]["matched"] == "requested_demo"
    lead = httpx.get(f"{url}/leads/{lead_id}", headers=auth("rep", "rep-8")).json()
    assert lead["reported_by"] == "rep-8" and lead["signals"] == {"requested_demo": 1} and lead["score"] == signal.json()["score"]
    unknown = httpx.post(f"{url}/leads/{lead_id}/signals", json={"signal": "liked"}, headers=auth("integration", "web"))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "signal"
    missing = httpx.post(f"{url}/leads/{uuid.uuid4()}/signals", json={"signal": "requested_demo"}, headers=auth("rep", "r"))
    assert missing.status_code == 404
    manager_claim = httpx.post(f"{url}/leads", json={**body, "phone": mobile()}, headers=auth("manager", "m"))
    assert manager_claim.status_code == 403


def test_oversized_and_mistyped_bodies_are_refused_and_record_nothing(services):
    url = services.url("intake")
    phone = mobile()
    huge = {"name": "x", "phone": phone, "source": "api", "needs": "x" * 70_000}
    assert httpx.post(f"{url}/leads", json=huge, headers=auth("rep", "r")).status_code == 413
    form = httpx.post(f"{url}/leads", data={"name": "x", "phone": phone, "source": "api"}, headers=auth("rep", "r"))
    assert form.status_code == 415
    body = {"name": "x", "phone": phone, "source": "api"}
    assert httpx.post(f"{url}/leads", json=body, headers=auth("rep", "r")).status_code == 201  # the phone was still free
