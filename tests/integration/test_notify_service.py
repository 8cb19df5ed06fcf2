"""The notify app itself (its lifespan, workers and HTTP API) on a real server, broker and database, with private
networks not allowed, as in production."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer

from services.notify.config import NotifySettings
from services.notify.main import build_app
from shared.auth import mint_token
from shared.config import DEV_JWT_SECRET
from shared.events import LeadCaptured, LeadClaimed, RepJoined, encode, kafka_headers, make_envelope
from tests.integration.notify_rig import free_port, until

pytestmark = pytest.mark.integration


@pytest.fixture
async def notify(infra, fresh_schema, fresh_topic):
    settings = NotifySettings(
        kafka_bootstrap=infra["kafka"],
        database_url=infra["database_url"],
        topic=fresh_topic,
        notify_schema=fresh_schema,
        consumer_group_prefix=f"it-{uuid.uuid4().hex[:8]}",
        webhook_allow_private_networks=False,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, timeout=30)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, 'admin-1', 'admin')}"},
            timeout=10,
        ) as client:
            client.topic = fresh_topic  # type: ignore[attr-defined]
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "https://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
async def test_a_subscription_to_a_private_address_is_refused_naming_the_url(notify, url):
    response = await notify.post("/webhooks", json={"url": url})
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "url" and "LEADFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in error["message"]


async def test_a_public_receiver_is_accepted_and_its_secret_shown_once(notify):
    created = await notify.post("/webhooks", json={"url": "https://8.8.8.8/hook", "types": ["LeadWon"]})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["types"] == ["LeadWon"] and body["state"] == "active"
    shown = (await notify.get(f"/webhooks/{body['id']}")).json()
    assert "secret" not in shown
    rotated = (await notify.post(f"/webhooks/{body['id']}/rotate-secret", json={"keep_previous_for": 3600})).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != body["secret"] and rotated["previous_secret_until"]
    short = await notify.post(f"/webhooks/{body['id']}/rotate-secret", json={"secret": "whsec_c2hvcnQ="})
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "secret"
    assert (await notify.post(f"/webhooks/{body['id']}/pause")).json()["state"] == "paused"
    assert (await notify.post(f"/webhooks/{body['id']}/resume")).json()["state"] == "active"
    assert (await notify.delete(f"/webhooks/{body['id']}")).status_code == 204
    assert (await notify.get(f"/webhooks/{body['id']}")).status_code == 404
    assert (await notify.get("/readyz")).status_code == 200


async def publish(bootstrap: str, topic: str, *payloads) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for payload in payloads:
            envelope = make_envelope(payload, service="test", time=datetime.now(UTC))
            await producer.send_and_wait(topic, encode(envelope), key=payload.key.encode(), headers=kafka_headers(envelope))
    finally:
        await producer.stop()


async def test_the_feed_streams_a_reps_notifications_as_server_sent_events(notify, infra):
    rep, lead = "rep-sse", str(uuid.uuid4())
    rep_auth = {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, rep, 'rep')}"}
    await publish(
        infra["kafka"],
        notify.topic,
        RepJoined(rep_id=rep, display_name="李雷", role="rep"),
        LeadCaptured(lead_id=lead, name="王芳", phone="+8613800138000", source="web", score=70, grade="B", captured_by="api"),
        LeadClaimed(lead_id=lead, rep_id=rep, how="assign", protected_until=datetime.now(UTC) + timedelta(days=30)),
    )
    async with notify.stream("GET", "/feed/stream", params={"after": 0}, headers=rep_auth, timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        async for line in stream.aiter_lines():
            if line.startswith(("id:", "event:", "data:")):
                name, _, value = line.partition(":")
                event[name] = value.strip()
            if "data" in event:
                break
    assert event["event"] == "notification"
    item = orjson.loads(event["data"])
    assert (item["kind"], item["lead_id"], int(event["id"])) == ("lead_assigned", lead, item["id"])
    assert "王芳" in item["title"]
    page = (await notify.get("/feed", headers=rep_auth)).json()
    assert [i["id"] for i in page["items"]] == [item["id"]]
    assert (await notify.post("/feed/read", json={"up_to": item["id"]}, headers=rep_auth)).json() == {"marked": 1}
