"""intake over HTTP: a capture is acknowledged, de-duplicated by phone, and published."""

import asyncio
import uuid

import httpx

from tests.e2e.conftest import auth
from tests.integration.kafka_reading import read_all


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


def published_captures(services) -> set[str]:
    found = asyncio.run(read_all(services.env["LEADFLOW_KAFKA_BOOTSTRAP"], services.env["LEADFLOW_TOPIC"], 1, timeout_s=3))
    return {envelope.subject for _, envelope in found if envelope.type == "LeadCaptured"}


def test_captures_made_while_the_relay_process_is_down_are_published_when_it_is_back(services):
    """intake's API records and its relay process publishes: with the relay killed, captures are still
    acknowledged, nothing reaches the topic, and everything does once a relay runs again."""
    url = services.url("intake")
    services.stop("intake-relay", kill=True)
    try:
        items = [{"name": f"客户{n}", "phone": random_mobile(), "source": "web_form"} for n in range(40)]
        r = httpx.post(f"{url}/leads/batch", json=items, headers=auth("integration", "crm"))
        assert r.status_code == 200, r.text
        assert [item["status"] for item in r.json()] == ["created"] * 40
        lead_ids = {item["lead_id"] for item in r.json()}
        assert not lead_ids & published_captures(services), "only the relay process publishes"
    finally:
        services.start("intake-relay")
        services.wait_ready("intake-relay")
    for _ in range(20):
        missing = lead_ids - published_captures(services)
        if not missing:
            break
    assert not missing, f"{len(missing)} acknowledged captures never published"
