"""Clean text at every edge, over HTTP and Kafka against the running services: a NUL, another control
character, a lone surrogate or a bidi override in a body field, a query or path value, a CSV cell or a token
claim is refused naming the field (401 for the token), nothing of it is recorded, and an event carrying one
that a foreign producer writes onto the topic is applied by no service."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
import orjson
from aiokafka import AIOKafkaProducer

from shared.config import DEV_JWT_SECRET
from shared.events import LeadCaptured, encode, make_envelope
from tests.e2e.conftest import auth, eventually

LONE_SURROGATE_BODY = b'{"name": "\\ud800", "phone": "%s", "source": "api"}'


def mobile() -> str:
    return "133" + str(uuid.uuid4().int)[:8]


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, *fields: str) -> None:
    """A 422 problem document whose errors name exactly ``fields``."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == list(fields), response.text


def claims_token(sub: str, role: str = "rep") -> dict[str, str]:
    token = jwt.encode({"sub": sub, "role": role, "exp": int(time.time()) + 600}, DEV_JWT_SECRET, "HS256")
    return {"Authorization": f"Bearer {token}"}


def bad_tokens() -> list[dict[str, str]]:
    return [claims_token("rep\x00-1"), claims_token("rep-\u202e1"), claims_token("rep-1", "manager\x00")]


def capture(services, **fields) -> str:
    body = {"name": "孙九", "phone": mobile(), "source": "web_form", **fields}
    return ok(httpx.post(f"{services.url('intake')}/leads", json=body, headers=auth("integration", "crm")), 201)["lead_id"]


def test_intake_refuses_such_text_in_bodies_and_tokens_and_records_none_of_it(services):
    url = services.url("intake")
    phone = mobile()
    for bad in ({"name": "李\x00四"}, {"company": "\u202eACME"}, {"contacts": [{"name": "王\x85五", "role": "user"}]}):
        body = {"name": "李四", "phone": phone, "source": "api", **bad}
        field = "contacts.0.name" if "contacts" in bad else next(iter(bad))
        refused(httpx.post(f"{url}/leads", json=body, headers=auth("rep", "rep-1")), field)
    tagged = {"name": "李四", "phone": phone, "source": "api", "tags": ["a\tb"]}
    refused(httpx.post(f"{url}/leads", json=tagged, headers=auth("rep", "rep-1")), "tags.0")
    surrogate = httpx.post(
        f"{url}/leads",
        content=LONE_SURROGATE_BODY % phone.encode(),
        headers={**auth("rep", "rep-1"), "content-type": "application/json"},
    )
    refused(surrogate, "name")
    for headers in bad_tokens():
        assert (
            httpx.post(f"{url}/leads", json={"name": "李四", "phone": phone, "source": "api"}, headers=headers).status_code == 401
        )

    lead_id = ok(
        httpx.post(
            f"{url}/leads",
            json={"name": "李四", "phone": phone, "source": "api", "needs": "一期 MES\n二期 WMS", "company": "שלום\u200f 公司"},
            headers=auth("rep", "rep-1"),
        ),
        201,
    )["lead_id"]  # the phone was still free: nothing refused was recorded
    signal = httpx.post(f"{url}/leads/{lead_id}/signals", json={"signal": "requested\x00demo"}, headers=auth("rep", "rep-1"))
    refused(signal, "signal")

    batch = [
        {"name": "甲", "phone": mobile(), "source": "api"},
        {"name": "乙", "phone": mobile(), "source": "api", "industry": "制造\x1b[2J"},
        {"name": "丙", "phone": mobile(), "source": "api\u2066"},
    ]
    results = ok(httpx.post(f"{url}/leads/batch", json=batch, headers=auth("integration", "crm")))
    assert [r["status"] for r in results] == ["created", "invalid", "invalid"]
    assert [[e["field"] for e in r["errors"]] for r in results[1:]] == [["industry"], ["source"]]


def test_a_csv_cell_with_such_text_makes_its_row_invalid_naming_the_column(services):
    url = services.url("intake")
    good, nul, bidi, broken = (mobile() for _ in range(4))
    csv = (
        "姓名,手机,公司,需求\r\n"
        f'张三,\t{good},甲公司,"一期\n二期"\r\n'
        f"李\x00四,{nul},乙公司,\r\n"
        f"王五,{bidi},\u202e司公丙,\r\n"
        f'"赵\n六",{broken},丁公司,\r\n'
    ).encode()
    headers = {**auth("manager", "ops-1"), "content-type": "text/csv"}
    report = ok(httpx.post(f"{url}/leads/import", content=csv, headers=headers, timeout=30))
    assert report["created"] == 1
    assert [(row["row"], [e["field"] for e in row["errors"]]) for row in report["invalid"]] == [
        (3, ["name"]),
        (4, ["company"]),
        (5, ["name"]),
    ]
    for phone in (nul, bidi, broken):  # none of the refused rows became a lead
        ok(httpx.post(f"{url}/leads", json={"name": "x", "phone": phone, "source": "api"}, headers=auth("rep", "r")), 201)


def test_assignment_names_the_body_query_and_path_value_it_refuses(services):
    url = services.url("assignment")
    manager = auth("manager", "mgr-1")
    lead_id = capture(services, region="e2e-clean-text")
    eventually(lambda: ok(httpx.get(f"{url}/leads/{lead_id}/ownership", headers=manager)))

    # The assign that once stopped three consumers for good.
    refused(httpx.post(f"{url}/leads/{lead_id}/assign", json={"rep_id": "eco\x00rep"}, headers=manager), "rep_id")
    refused(httpx.post(f"{url}/leads/{lead_id}/assign", json={"rep_id": "rep\u2067-1"}, headers=manager), "rep_id")
    assert ok(httpx.get(f"{url}/leads/{lead_id}/ownership", headers=manager))["owner"] is None
    refused(httpx.post(f"{url}/reps/rep-gone/offboard", json={"transfer_to": "rep\x9b1"}, headers=manager), "transfer_to")
    refused(httpx.post(f"{url}/reps/rep%00gone/offboard", headers=manager), "rep_id")
    refused(httpx.get(f"{url}/reps/rep%E2%80%AE1/leads", headers=manager), "rep_id")
    refused(httpx.get(f"{url}/pool", params={"region": "e2e\x00"}, headers=manager), "region")
    refused(httpx.get(f"{url}/pool", params={"source": "web\u202a", "cursor": "x\x07"}, headers=manager), "source", "cursor")
    for headers in bad_tokens():
        assert httpx.post(f"{url}/leads/{lead_id}/claim", headers=headers).status_code == 401
        assert httpx.get(f"{url}/pool", headers=headers).status_code == 401
    assert ok(httpx.get(f"{url}/leads/{lead_id}/ownership", headers=manager))["owner"] is None


def test_followup_names_the_body_query_and_path_value_it_refuses(services):
    url = services.url("followup")
    rep = f"rep-{uuid.uuid4().hex[:6]}"
    lead_id = capture(services)
    eventually(lambda: ok(httpx.post(f"{services.url('assignment')}/leads/{lead_id}/claim", headers=auth("rep", rep))))
    contact = {"channel": "phone", "summary": "首次沟通\r\n\t约了演示", "stage": "contacted"}
    eventually(lambda: ok(httpx.post(f"{url}/leads/{lead_id}/follow-ups", json=contact, headers=auth("rep", rep)), 201))

    for bad, field in [
        ({"summary": "约\x00了"}, "summary"),
        ({"next_step": "发报价\u202e"}, "next_step"),
        ({"pain_points": "over\rwritten"}, "pain_points"),
        ({"tags": ["ok", "vip\n"]}, "tags.1"),
    ]:
        refused(httpx.post(f"{url}/leads/{lead_id}/follow-ups", json={**contact, **bad}, headers=auth("rep", rep)), field)
    refused(httpx.get(f"{url}/tasks", params={"rep_id": "rep\x00"}, headers=auth("manager", "mgr-1")), "rep_id")
    refused(httpx.get(f"{url}/tasks", params={"escalated_to": "\u2068mgr"}, headers=auth("manager", "mgr-1")), "escalated_to")
    refused(httpx.get(f"{url}/tasks/task%00-1", headers=auth("manager", "mgr-1")), "task_id")
    refused(httpx.post(f"{url}/tasks/task%1B-1/complete", headers=auth("manager", "mgr-1")), "task_id")
    for headers in bad_tokens():
        assert httpx.post(f"{url}/leads/{lead_id}/follow-ups", json=contact, headers=headers).status_code == 401

    timeline = ok(httpx.get(f"{url}/leads/{lead_id}/follow-ups", headers=auth("rep", rep)))
    assert [f["summary"] for f in timeline["follow_ups"]] == ["首次沟通\r\n\t约了演示"]  # free text keeps its lines


def test_analytics_names_the_query_and_path_value_it_refuses(services):
    url = services.url("analytics")
    manager = auth("manager", "mgr-1")
    refused(httpx.get(f"{url}/funnel", params={"group_by": "source\x00"}, headers=manager), "group_by")
    refused(httpx.get(f"{url}/leaderboard", params={"from": "2026-01-01\u202e"}, headers=manager), "from")
    refused(httpx.get(f"{url}/customers/{uuid.uuid4()}", params={"as_of": "2026-01-01T00:00:00Z\x00"}, headers=manager), "as_of")
    refused(httpx.get(f"{url}/customers/not%00a-uuid", headers=manager), "lead_id")
    for headers in (*bad_tokens(), claims_token("mgr\x85", "manager")):
        assert httpx.get(f"{url}/funnel", headers=headers).status_code == 401
    assert httpx.get(f"{url}/funnel", headers=claims_token("mgr-1", "manager")).status_code == 200  # the same, clean


async def produce_raw(services, key: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=services.env["LEADFLOW_KAFKA_BOOTSTRAP"])
    await producer.start()
    try:
        await producer.send_and_wait(
            services.env["LEADFLOW_TOPIC"], value, key=key.encode(), headers=[("ce_type", b"LeadCaptured")]
        )
    finally:
        await producer.stop()


def test_a_captured_event_with_a_nul_written_straight_onto_the_topic_is_applied_by_no_service(services):
    """What the API refuses, a foreign producer might still write: every consumer refuses it as invalid and goes on."""
    rep = f"rep-{uuid.uuid4().hex[:6]}"
    manager = auth("manager", "mgr-1")
    lead_id = capture(services)
    eventually(lambda: ok(httpx.get(f"{services.url('assignment')}/leads/{lead_id}/ownership", headers=manager)))

    poisoned = str(uuid.uuid4())
    payload = LeadCaptured(
        lead_id=poisoned, name="李四", phone="+86" + mobile(), source="web_form", score=50, grade="B", captured_by="foreign"
    )
    record = orjson.loads(encode(make_envelope(payload, service="foreign", time=datetime.now(UTC))))
    record["data"]["name"] = "李\x00四"
    # Keyed by the lead above, so it lands in that lead's partition ahead of everything that follows for it.
    asyncio.run(produce_raw(services, lead_id, orjson.dumps(record)))

    # Each step needs a service to have consumed an event that comes after the poison in the partition.
    eventually(lambda: ok(httpx.post(f"{services.url('assignment')}/leads/{lead_id}/claim", headers=auth("rep", rep))))
    contact = {"channel": "phone", "summary": "首次沟通", "stage": "contacted"}
    follow_ups = f"{services.url('followup')}/leads/{lead_id}/follow-ups"
    eventually(lambda: ok(httpx.post(follow_ups, json=contact, headers=auth("rep", rep)), 201))  # followup saw the claim
    ownership = f"{services.url('assignment')}/leads/{lead_id}/ownership"
    eventually(lambda: ok(httpx.get(ownership, headers=manager))["stage"] == "contacted")  # assignment saw the follow-up
    customer = f"{services.url('analytics')}/customers/{lead_id}"
    eventually(lambda: ok(httpx.get(customer, headers=manager))["follow_ups"], timeout=30)  # so did analytics

    assert httpx.get(f"{services.url('assignment')}/leads/{poisoned}/ownership", headers=manager).status_code == 404
    assert httpx.get(f"{services.url('analytics')}/customers/{poisoned}", headers=manager).status_code == 404
    assert httpx.get(f"{services.url('followup')}/leads/{poisoned}/follow-ups", headers=manager).status_code == 404
