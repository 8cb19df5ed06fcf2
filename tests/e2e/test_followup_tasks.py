"""followup over HTTP and Kafka: a claim raises the first-contact task, a contact completes it and
plans the next, a missed task becomes overdue and is escalated; only the owner (or a manager) may log."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import AIOKafkaProducer

from shared.events import LeadClaimed, encode, kafka_headers, make_envelope
from tests.e2e.conftest import auth, eventually


def capture(services) -> str:
    body = {"name": "赵六", "phone": "137" + str(uuid.uuid4().int)[:8], "source": "web_form", "company": "示例"}
    r = httpx.post(f"{services.url('intake')}/leads", json=body, headers=auth("integration", "crm"))
    assert r.status_code == 201, r.text
    return r.json()["lead_id"]


async def _publish_claim(services, lead_id: str, rep_id: str) -> None:
    now = datetime.now(UTC)
    claim = LeadClaimed(lead_id=lead_id, rep_id=rep_id, how="claim", protected_until=now + timedelta(days=30))
    envelope = make_envelope(claim, service="e2e", time=now)
    producer = AIOKafkaProducer(bootstrap_servers=services.env["LEADFLOW_KAFKA_BOOTSTRAP"])
    await producer.start()
    try:
        await producer.send_and_wait(
            services.env["LEADFLOW_TOPIC"], encode(envelope), key=lead_id.encode(), headers=kafka_headers(envelope)
        )
    finally:
        await producer.stop()


def claim(services, lead_id: str, rep_id: str) -> None:
    """Through the assignment service when it runs (it must have learned the lead first), else as its event."""
    if "assignment" not in services.ports:
        asyncio.run(_publish_claim(services, lead_id, rep_id))
        return

    def claimed():
        r = httpx.post(f"{services.url('assignment')}/leads/{lead_id}/claim", headers=auth("rep", rep_id))
        assert r.status_code == 200, r.text
        return True

    eventually(claimed)


def tasks(services, role: str, sub: str, **params) -> list[dict]:
    r = httpx.get(f"{services.url('followup')}/tasks", params=params, headers=auth(role, sub))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_claim_contact_next_task_overdue_and_escalated(services):
    url = services.url("followup")
    rep = f"rep-{uuid.uuid4().hex[:6]}"
    lead_id = capture(services)
    claim(services, lead_id, rep)

    def first_contact():
        found = [t for t in tasks(services, "rep", rep, lead_id=lead_id) if t["kind"] == "first_contact"]
        assert found and found[0]["status"] == "open", found
        return found[0]

    first = eventually(first_contact)
    assert first["rep_id"] == rep

    r = httpx.post(
        f"{url}/leads/{lead_id}/follow-ups",
        json={"channel": "phone", "summary": "首次通话，客户关注价格", "pain_points": "manual reporting", "tags": ["hot"]},
        headers=auth("rep", rep),
    )
    assert r.status_code == 201, r.text
    follow_up = r.json()
    assert follow_up["stage"] == "contacted"

    def completed_and_next_planned():
        done = tasks(services, "rep", rep, lead_id=lead_id, status="done")
        assert first["task_id"] in [t["task_id"] for t in done]
        assert next(t for t in done if t["task_id"] == first["task_id"])["follow_up_id"] == follow_up["follow_up_id"]
        later = [t for t in tasks(services, "rep", rep, lead_id=lead_id) if t["kind"] == "cadence"]
        assert later, "the next contact is planned"
        return later[0]

    cadence = eventually(completed_and_next_planned)

    def escalated():
        mine = tasks(services, "manager", "sales-manager", lead_id=lead_id, status="overdue", escalated_to="sales-manager")
        assert cadence["task_id"] in [t["task_id"] for t in mine]
        return True

    eventually(escalated, timeout=20)

    timeline = httpx.get(f"{url}/leads/{lead_id}/follow-ups", headers=auth("rep", rep)).json()
    assert [f["summary"] for f in timeline["follow_ups"]] == ["首次通话，客户关注价格"]
    assert timeline["stage"] == "contacted" and timeline["owner"] == rep


def test_a_non_owners_follow_up_is_refused_and_bad_input_records_nothing(services):
    url = services.url("followup")
    owner = f"rep-{uuid.uuid4().hex[:6]}"
    lead_id = capture(services)
    claim(services, lead_id, owner)
    eventually(lambda: tasks(services, "rep", owner, lead_id=lead_id))
    body = {"channel": "phone", "summary": "hello"}

    r = httpx.post(f"{url}/leads/{lead_id}/follow-ups", json=body, headers=auth("rep", "rep-intruder"))
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:leadflow:problem:not-owner"
    assert httpx.post(f"{url}/leads/{uuid.uuid4()}/follow-ups", json=body, headers=auth("rep", owner)).status_code == 404
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for bad in (
        {"channel": "phone", "summary": "  "},
        {"channel": "fax", "summary": "x"},
        {**body, "next_follow_up_at": past},
        {**body, "stage": "lost"},
        {**body, "stage": "assigned"},
    ):
        r = httpx.post(f"{url}/leads/{lead_id}/follow-ups", json=bad, headers=auth("rep", owner))
        assert r.status_code == 422, (bad, r.text)
    assert httpx.post(f"{url}/leads/{lead_id}/follow-ups", json=body).status_code == 401
    timeline = httpx.get(f"{url}/leads/{lead_id}/follow-ups", headers=auth("manager", "m-1")).json()
    assert timeline["follow_ups"] == [] and timeline["stage"] == "assigned"
    assert httpx.get(f"{url}/tasks", params={"rep_id": owner}, headers=auth("rep", "rep-intruder")).status_code == 403

    won = {**body, "stage": "won", "won_amount": 5000, "currency": "CNY"}
    assert httpx.post(f"{url}/leads/{lead_id}/follow-ups", json=won, headers=auth("manager", "m-1")).status_code == 201
    again = {**body, "stage": "negotiating"}
    r = httpx.post(f"{url}/leads/{lead_id}/follow-ups", json=again, headers=auth("rep", owner))
    assert r.status_code == 422 and r.json()["type"] == "urn:leadflow:problem:stage-move-forbidden"
