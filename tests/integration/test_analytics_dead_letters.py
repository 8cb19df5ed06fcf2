"""analytics' read models on the real broker and database meet events that are valid but wrong for them: a
second LeadCaptured of a known lead restates nothing, an event of a lead never captured invents no row (it
is parked), and a NUL in a field is parked; everything else is applied, once."""

from __future__ import annotations

import asyncio
import random
import string
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from psycopg import sql
from psycopg_pool import ConnectionPool

from services.analytics.catalog import Catalog
from services.analytics.consumers import instance_consumer
from services.analytics.domain import fold_customer
from services.analytics.projections import REGISTRY
from services.analytics.queries import Queries
from services.analytics.synthetic import History
from services.analytics.tracking import InstanceWriter
from shared.events import LeadClaimed, encode, kafka_headers, make_envelope
from tests.integration.test_analytics_read_models import analytics_schema, settings  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration
D0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return D0 + timedelta(hours=hours)


def rows_of(database_url: str, instance: str, lead_id: str) -> dict[str, int]:
    """How many rows each projection table of ``instance`` holds for the lead."""
    found = {}
    with psycopg.connect(database_url) as conn:
        for table in (t for p in REGISTRY.values() for t in p.tables if t != "rep_daily"):
            query = sql.SQL("SELECT count(*) FROM {} WHERE lead_id = %s").format(sql.Identifier(instance, table))
            found[table] = conn.execute(query, (lead_id,)).fetchone()[0]
    return found


def record_of(envelope) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return envelope.subject.encode(), encode(envelope), kafka_headers(envelope)


def with_nul(record: tuple[bytes, bytes, list[tuple[str, bytes]]]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key, value, headers = record
    parsed = orjson.loads(value)
    parsed["data"]["rep_id"] = "eco\x00rep"
    return key, orjson.dumps(parsed), headers


async def produce(bootstrap: str, topic: str, records) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send(topic, value, key=key, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def test_duplicate_captures_strays_and_nul_fields_neither_rewrite_nor_invent_rows(settings):  # noqa: F811
    known = (
        History().capture(at(0), source="trade_show", region="华东").claim(at(1), "rep-1").follow_up(at(2), "rep-1", "contacted")
    )
    again = History(known.lead_id).capture(at(3), source="search_ads", region="华南")  # a new id: intake would never
    stray = History().claim(at(4), "rep-9")  # never captured
    # A NUL in a field, as a foreign producer could write it (LeadFlow's own models refuse to build it).
    nul = make_envelope(
        LeadClaimed(lead_id=known.lead_id, rep_id="eco-rep", how="claim", protected_until=at(5)), service="assignment", time=at(5)
    )
    later = History(known.lead_id).follow_up(at(6), "rep-1", "qualified")
    # Valid, but its region is too large for an index row (PostgreSQL's "program limit exceeded", which
    # psycopg reports as an OperationalError, like an outage): parked, not retried forever.
    huge = History().capture(at(7), region="".join(random.Random(5).choices(string.ascii_letters, k=6000)))
    huge.claim(at(8), "rep-3")  # then, its capture parked, the lead is unknown: parked as such, not as a failure
    records = [
        *(record_of(e) for e in [*known.events, *again.events, *stray.events]),
        with_nul(record_of(nul)),
        *(record_of(e) for e in [*later.events, *huge.events]),
    ]
    await produce(settings.kafka_bootstrap, settings.topic, records)

    with ConnectionPool(settings.database_url, min_size=1, max_size=3) as pool:
        catalog = Catalog(pool, settings.analytics_schema)
        catalog.ensure_serving()
        (instance,) = catalog.serving_instances()
        writer = InstanceWriter(pool, instance, settings.topic, settings.analytics_schema)
        consumer = instance_consumer(settings, writer, batch_size=100)
        await consumer.start()
        task = asyncio.create_task(consumer.run())
        try:
            await consumer.wait_until_caught_up(timeout=60)
        finally:
            consumer.stop()
            await asyncio.wait_for(task, 20)

        with pool.connection() as conn:
            funnel = conn.execute(
                sql.SQL("SELECT source, region, captured_at, max_stage FROM {} WHERE lead_id = %s").format(
                    sql.Identifier(instance.name, "funnel_leads")
                ),
                (known.lead_id,),
            ).fetchone()
            parked = conn.execute(
                sql.SQL('SELECT reason, lead_id, event_type, worker FROM {} ORDER BY "offset"').format(
                    sql.Identifier(settings.analytics_schema, "dead_letters")
                )
            ).fetchall()
        view = fold_customer(Queries(pool, settings.analytics_schema).customer_events(known.lead_id), known.lead_id)

    assert funnel == ("trade_show", "华东", at(0), 3), "the first capture stands; the stage went on to qualified"
    assert (view.source, view.stage, view.captured_at) == ("trade_show", "qualified", at(0))
    assert [change.stage for change in view.stage_history] == ["new", "assigned", "contacted", "qualified"]
    assert all(count == 0 for count in rows_of(settings.database_url, instance.name, stray.lead_id).values()), "no row invented"
    worker = f"instance-{instance.name}"
    assert {(r[0], r[1], r[2], r[3]) for r in parked if r[0] == "unknown-lead"} == {
        ("unknown-lead", stray.lead_id, "LeadClaimed", worker),
        ("unknown-lead", huge.lead_id, "LeadClaimed", worker),
    }
    # A NUL is refused when the event is read (the contract's text rule) or, failing that, parked by the
    # handler that cannot write it: either way parked, never applied, and the events after it are.
    assert {(r[0] in ("invalid-record", "handler-error"), r[1]) for r in parked if r[0] != "unknown-lead"} == {
        (True, known.lead_id),
        (True, huge.lead_id),
    }
    assert consumer.parked == 4
