"""Poison on the topic, with the services running: every consumer parks it, counts it, stays ready, and
the leads captured after it flow through as before."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka import AIOKafkaProducer

from shared.events import LeadClaimed, encode, kafka_headers, make_envelope
from tests.e2e.conftest import ROOT, auth, eventually
from tests.e2e.test_metrics_exposed import capture_a_lead, scrape, value

CONSUMERS = ("assignment", "followup", "analytics")


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value_, headers in records:
            await producer.send(topic, value_, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


def test_poison_records_are_parked_by_every_consumer_which_stays_ready_and_goes_on(services):
    running = [s for s in CONSUMERS if s in services.ports]
    poison_key = f"poison-{uuid.uuid4()}".encode()
    stray = str(uuid.uuid4())  # a lead nobody captured
    claim = LeadClaimed(lead_id=stray, rep_id="rep-1", how="claim", protected_until=datetime.now(UTC) + timedelta(days=30))
    envelope = make_envelope(claim, service="assignment", time=datetime.now(UTC))
    records = [(poison_key, b"\x00\xff not JSON at all", []), (stray.encode(), encode(envelope), kafka_headers(envelope))]
    asyncio.run(produce(services.env["LEADFLOW_KAFKA_BOOTSTRAP"], services.env["LEADFLOW_TOPIC"], records))

    for service in running:

        def parked(service: str = service) -> bool:
            families = scrape(services, service)
            return value(families, "leadflow_events_dead_lettered_total", service=service, reason="invalid-record") >= 1

        assert eventually(parked, timeout=30), f"{service} did not park the record that is not JSON"
    if "analytics" in running:
        analytics = scrape(services, "analytics")
        assert value(analytics, "leadflow_events_dead_lettered_total", service="analytics", reason="unknown-lead") >= 1
        response = httpx.get(services.url("analytics") + f"/customers/{stray}", headers=auth("manager", "m-1"), timeout=5)
        assert response.status_code == 404, "a stray claim invents no 360 view"
    for service in running:
        assert httpx.get(services.url(service) + "/readyz", timeout=5).status_code == 200, f"{service} not ready"

    if "assignment" in running:
        listed = subprocess.run(
            [sys.executable, "-m", "shared.deadletters", "--service", "assignment", "list"],
            cwd=ROOT,
            env=services.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert "invalid-record" in listed.stdout and poison_key.decode() in listed.stdout

    if "analytics" in running and "intake" in services.ports:  # the consumers went on: a new lead flows through
        lead = capture_a_lead(services)
        url = services.url("analytics") + f"/customers/{lead}"
        assert eventually(lambda: httpx.get(url, headers=auth("manager", "m-1"), timeout=5).status_code == 200, timeout=30)
