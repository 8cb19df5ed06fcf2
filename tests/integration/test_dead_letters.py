"""Parking on the real broker and database: a record a consumer cannot apply goes to the dead-letter topic
and the service's ``dead_letters`` table, counted, and the records after it are applied, exactly once; an
outage parks nothing; a re-drive after a fix (through the CLI and the running consumer) applies it once."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from shared.config import ServiceSettings
from shared.consumer import Delivered, TopicConsumer
from shared.deadletters import dlq_topic
from shared.deadletters.tracked import TrackedDeadLetters
from shared.events import LeadClaimed, encode, kafka_headers, make_envelope
from shared.eventstore import (
    UnitOfWork,
    eventsourcing_env,
    tracked_batch_handler,
    tracked_partition_positions,
)
from shared.retry import GaveUp
from tests.integration.test_consumer import Ownership, OwnershipApp

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, tzinfo=UTC)
DLQ_HEADERS = ("dlq-service", "dlq-worker", "dlq-topic", "dlq-partition", "dlq-offset", "dlq-error", "dlq-attempts", "dlq-time")


class Handler:
    """The test service's policy: one claim per event. ``broken`` holds the rep ids it fails on (a bug, until fixed)."""

    def __init__(self, broken: set[str] | None = None, outage: set[str] | None = None) -> None:
        self.broken = broken or set()
        self.outage = outage or set()

    def __call__(self, unit: UnitOfWork, item: Delivered) -> None:
        rep_id = item.payload.rep_id
        if "\x00" in rep_id:  # as a read model's text column does (unless decoding refused it already)
            raise ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        if rep_id in self.outage:
            raise psycopg.OperationalError("connection to server lost")
        if rep_id in self.broken:
            raise ValueError(f"no such rep {rep_id!r}")
        ownership = unit.get(Ownership.create_id(item.payload.lead_id))
        if ownership is None:
            ownership = Ownership(item.payload.lead_id)
            unit.add(ownership)
        ownership.claim(rep_id)


@pytest.fixture
def app(infra, fresh_schema):
    application = OwnershipApp(eventsourcing_env(ServiceSettings(database_url=infra["database_url"]), fresh_schema))
    yield application
    application.close()


def claim(lead: str, rep: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    env = make_envelope(LeadClaimed(lead_id=lead, rep_id=rep, how="claim", protected_until=NOW), service="test", time=NOW)
    return env.subject.encode(), encode(env), kafka_headers(env)


def with_nul(record: tuple[bytes, bytes, list[tuple[str, bytes]]]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The record with a NUL in its rep id, as a foreign producer could write it (LeadFlow's models refuse to)."""
    key, value, headers = record
    parsed = orjson.loads(value)
    parsed["data"]["rep_id"] = "eco\x00rep"
    return key, orjson.dumps(parsed), headers


def schema_invalid(lead: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key, value, headers = claim(lead, "rep-x")
    record = orjson.loads(value)
    del record["data"]["rep_id"]  # a LeadClaimed without its rep: valid JSON and CloudEvent, not the contract
    return key, orjson.dumps(record), headers


async def produce_to(bootstrap: str, topic: str, partition: int, records) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send(topic, value, key=key, headers=headers, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def consumer_for(app, infra, topic: str, handler: Handler, service: str) -> TopicConsumer:
    return TopicConsumer(
        service=service,
        bootstrap=infra["kafka"],
        topic=topic,
        group_id=f"g-{uuid.uuid4()}",
        load_positions=tracked_partition_positions(app, topic),
        handle_batch=tracked_batch_handler(app, topic, handler),
        worker="consumer",
        dead_letters=TrackedDeadLetters(app, topic, handler),
        batch_size=50,
    )


async def consume_until_caught_up(consumer: TopicConsumer) -> TopicConsumer:
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_until_caught_up(timeout=60)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 20)
    return consumer


async def read_dlq(bootstrap: str, topic: str, expect: int) -> list:
    consumer = AIOKafkaConsumer(dlq_topic(topic), bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list = []
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while len(found) < expect and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


def dead_letters(database_url: str, schema: str) -> list[dict]:
    with psycopg.connect(database_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(f'SELECT * FROM "{schema}".dead_letters ORDER BY "offset"').fetchall()


def counted(service: str, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "leadflow_events_dead_lettered_total", {"service": service, "worker": "consumer", "reason": reason}
    )


def claims(app, lead: str) -> list[str]:
    aggregate = app.get_or_none(Ownership.create_id(lead))
    return [] if aggregate is None else aggregate.claims


async def test_poison_records_are_parked_with_their_headers_and_everything_after_them_is_applied_once(
    app, infra, fresh_topic, fresh_schema
):
    service = f"svc-{uuid.uuid4().hex[:6]}"
    lead = f"lead-{uuid.uuid4()}"
    good = [claim(lead, f"rep-{n}") for n in range(20)]
    poison = {
        "not-json": (lead.encode(), b"\xff{ this is not JSON", [("ce_type", b"LeadClaimed")]),
        "schema": schema_invalid(lead),
        "handler": claim(lead, "rep-broken"),
        "nul": with_nul(claim(lead, "eco-rep")),
    }
    records = [
        *good[:5],
        poison["not-json"],
        *good[5:10],
        poison["schema"],
        *good[10:15],
        poison["handler"],
        *good[15:18],
        poison["nul"],
        *good[18:],
    ]
    await produce_to(infra["kafka"], fresh_topic, 1, records)
    handler = Handler(broken={"rep-broken"})

    consumer = await consume_until_caught_up(consumer_for(app, infra, fresh_topic, handler, service))

    assert claims(app, lead) == [f"rep-{n}" for n in range(20)], "every record after a poison one is applied, once, in order"
    assert consumer.applied == 20 and consumer.parked == 4
    assert app.recorder.max_tracking_id(f"{fresh_topic}:1") == len(records)
    rows = dead_letters(infra["database_url"], fresh_schema)
    assert [(r["offset"], r["reason"], r["status"]) for r in rows[:3]] == [
        (5, "invalid-record", "parked"),
        (11, "invalid-record", "parked"),
        (17, "handler-error", "parked"),
    ]
    # A NUL is refused when the event is read (the contract's text rule) or by the handler that cannot store it.
    assert (rows[3]["offset"], rows[3]["reason"] in ("invalid-record", "handler-error")) == (21, True)
    assert "rep_id" in rows[1]["error"] and "no such rep 'rep-broken'" in rows[2]["error"]
    assert rows[2]["attempts"] > 1 and rows[2]["lead_id"] == lead and rows[2]["event_type"] == "LeadClaimed"
    assert bytes(rows[0]["value"]) == poison["not-json"][1]
    assert counted(service, "invalid-record") + counted(service, "handler-error") == 4
    assert counted(service, "invalid-record") >= 2 and counted(service, "handler-error") >= 1

    parked = await read_dlq(infra["kafka"], fresh_topic, expect=4)
    originals = (poison["not-json"], poison["schema"], poison["handler"], poison["nul"])
    assert [(r.key, r.value) for r in parked] == [(k, v) for k, v, _ in originals]
    for record, offset in zip(parked, (5, 11, 17, 21), strict=True):
        headers = dict(record.headers)
        assert set(DLQ_HEADERS) <= set(headers)
        assert headers["ce_type"] == b"LeadClaimed", "the original headers travel with it"
        assert (headers["dlq-service"], headers["dlq-worker"]) == (service.encode(), b"consumer")
        assert (headers["dlq-topic"], headers["dlq-partition"], headers["dlq-offset"]) == (
            fresh_topic.encode(),
            b"1",
            str(offset).encode(),
        )

    # A new consumer (a new group: Kafka offsets say nothing) applies and parks nothing again.
    again = await consume_until_caught_up(consumer_for(app, infra, fresh_topic, handler, service))
    assert (again.applied, again.parked) == (0, 0)
    assert len(dead_letters(infra["database_url"], fresh_schema)) == 4
    assert claims(app, lead) == [f"rep-{n}" for n in range(20)]


async def test_a_database_outage_is_not_parked_the_consumer_raises_for_its_supervisor(app, infra, fresh_topic, fresh_schema):
    service = f"svc-{uuid.uuid4().hex[:6]}"
    lead = f"lead-{uuid.uuid4()}"
    await produce_to(infra["kafka"], fresh_topic, 0, [claim(lead, "rep-1"), claim(lead, "rep-down"), claim(lead, "rep-2")])
    handler = Handler(outage={"rep-down"})
    consumer = consumer_for(app, infra, fresh_topic, handler, service)
    await consumer.start()
    with pytest.raises(GaveUp) as raised:
        await asyncio.wait_for(consumer.run(), 60)
    assert isinstance(raised.value.last, psycopg.OperationalError)
    assert dead_letters(infra["database_url"], fresh_schema) == []
    assert counted(service, "handler-error") == 0
    assert (app.recorder.max_tracking_id(f"{fresh_topic}:0") or 0) <= 1, "never past the record it could not apply"

    handler.outage.clear()  # the database is back: a restarted consumer applies everything, once
    await consume_until_caught_up(consumer_for(app, infra, fresh_topic, handler, service))
    assert claims(app, lead) == ["rep-1", "rep-down", "rep-2"]
    assert dead_letters(infra["database_url"], fresh_schema) == []


async def run_cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.deadletters",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=os.environ.copy(),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode, out.decode()


async def test_a_re_drive_after_a_fix_applies_the_record_once_and_a_second_re_drive_changes_nothing(
    app, infra, fresh_topic, fresh_schema
):
    service = f"svc-{uuid.uuid4().hex[:6]}"
    lead = f"lead-{uuid.uuid4()}"
    await produce_to(infra["kafka"], fresh_topic, 2, [claim(lead, "rep-1"), claim(lead, "rep-new"), claim(lead, "rep-2")])
    handler = Handler(broken={"rep-new"})
    await consume_until_caught_up(consumer_for(app, infra, fresh_topic, handler, service))
    assert claims(app, lead) == ["rep-1", "rep-2"]
    (row,) = dead_letters(infra["database_url"], fresh_schema)

    code, listed = await run_cli("--service", "assignment", "--schema", fresh_schema, "list")
    assert code == 0 and f"{row['id']:>6}" in listed and "handler-error" in listed and lead in listed
    code, shown = await run_cli("--service", "assignment", "--schema", fresh_schema, "show", str(row["id"]))
    assert code == 0 and "no such rep" in shown and "handler-error" in shown
    assert '"rep_id": "rep-new"' in shown

    handler.broken.clear()  # the fix is deployed: the service runs its consumer with the fixed handler
    consumer = consumer_for(app, infra, fresh_topic, handler, service)
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        code, out = await run_cli("--service", "assignment", "--schema", fresh_schema, "retry", "--all", "--wait", "60")
        assert code == 0, out
        assert "resolved 1/1" in out
        assert claims(app, lead) == ["rep-1", "rep-2", "rep-new"], "re-driven now, once"
        events = app.recorder.max_notification_id()

        code, out = await run_cli("--service", "assignment", "--schema", fresh_schema, "retry", str(row["id"]))
        assert code == 0 and "resolved, nothing to re-drive" in out, out
        await asyncio.sleep(2.5)  # longer than the consumer's look for requests
        assert claims(app, lead) == ["rep-1", "rep-2", "rep-new"]
        assert app.recorder.max_notification_id() == events
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 20)
    ((status, redrives),) = [(r["status"], r["redrives"]) for r in dead_letters(infra["database_url"], fresh_schema)]
    assert (status, redrives) == ("resolved", 1)


async def test_a_re_drive_that_fails_again_parks_it_again_and_discard_gives_it_up(app, infra, fresh_topic, fresh_schema):
    service = f"svc-{uuid.uuid4().hex[:6]}"
    lead = f"lead-{uuid.uuid4()}"
    await produce_to(infra["kafka"], fresh_topic, 0, [claim(lead, "rep-bad")])
    handler = Handler(broken={"rep-bad"})
    consumer = consumer_for(app, infra, fresh_topic, handler, service)
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_until_caught_up(timeout=60)
        code, out = await run_cli("--service", "assignment", "--schema", fresh_schema, "retry", "--all", "--wait", "60")
        assert code == 1 and "failed again" in out and "no such rep" in out, out
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 20)
    ((row),) = dead_letters(infra["database_url"], fresh_schema)
    assert (row["status"], row["redrives"]) == ("parked", 1) and "no such rep" in row["last_redrive_error"]
    code, out = await run_cli("--service", "assignment", "--schema", fresh_schema, "discard", str(row["id"]))
    assert code == 0 and "discarded 1 entry" in out
    code, out = await run_cli("--service", "assignment", "--schema", fresh_schema, "list")
    assert "no entries" in out
    assert claims(app, lead) == []
