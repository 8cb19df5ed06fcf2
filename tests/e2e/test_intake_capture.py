"""intake over HTTP: a capture is acknowledged, de-duplicated by phone, and published."""

import uuid

import httpx

from tests.e2e.conftest import auth


def random_mobile() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


def test_capture_then_duplicate_then_read(services):
    url = services.url("intake")
    phone = random_mobile()
    body = {"name": " 李四 ", "phone": phone, "source": "web_form", "company": "示例科技"}
    r = httpx.post(f"{url}/leads", json=body, headers=auth("integration", "crm-sync"))
    assert r.status_code == 201, r.text
    lead_id = r.json()["lead_id"]
    dup = httpx.post(f"{url}/leads", json={**body, "phone": f"+86 {phone}", "source": "trade_show"}, headers=auth("rep", "rep-1"))
    assert dup.status_code == 409
    assert dup.json()["lead_id"] == lead_id
    got = httpx.get(f"{url}/leads/{lead_id}", headers=auth("manager", "m-1")).json()
    assert got["name"] == "李四" and got["phone"] == f"+86{phone}"
    assert [r["source"] for r in got["recaptures"]] == ["trade_show"]
    assert httpx.post(f"{url}/leads", json={**body, "phone": "12345"}, headers=auth("rep", "r")).status_code == 422
    assert httpx.post(f"{url}/leads", json=body).status_code == 401
