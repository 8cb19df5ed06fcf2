"""From the topic to the pool and back: consuming exactly once, the projected view, and recycling
with a fake clock, on the real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiokafka import AIOKafkaProducer
from psycopg import sql
from psycopg_pool import ConnectionPool

from services.assignment.app import AssignmentApplication, eventstore_env
from services.assignment.domain.routing import AssignmentRules
from services.assignment.domain.rules import OwnershipRules
from services.assignment.policies import UpstreamPolicy
from services.assignment.projections import Projector, RowChange
from services.assignment.readmodel import ReadModel
from services.assignment.recycling import Recycler
from shared.clock import FakeClock
from shared.config import ServiceSettings
from shared.consumer import TopicConsumer
from shared.deadletters.tracked import TrackedDeadLetters
from shared.events import FollowUpLogged, LeadCaptured, encode, kafka_headers, make_envelope
from shared.eventstore import tracked_batch_handler, tracked_partition_positions

pytestmark = pytest.mark.integration
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULES = OwnershipRules(first_contact_sla=timedelta(hours=48))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app(infra, fresh_schema):
    application = AssignmentApplication(eventstore_env(ServiceSettings(database_url=infra["database_url"]), fresh_schema), RULES)
    yield application
    application.close()


@pytest.fixture
def view(infra, fresh_schema):
    pool = ConnectionPool(infra["database_url"], min_size=1, max_size=2, open=True)
    readmodel = ReadModel(pool, fresh_schema)
    readmodel.create_tables()
    yield readmodel
    pool.close()


def captured(region: str, reported_by: str | None = None) -> LeadCaptured:
    return LeadCaptured(
        lead_id=str(uuid.uuid4()),
        name="王五",
        phone="+8613900139000",
        source="trade_show",
        region=region,
        score=40,
        grade="B",
        captured_by="crm",
        reported_by=reported_by,
    )


async def produce(bootstrap: str, topic: str, payloads, at: datetime) -> list:
    envelopes = [make_envelope(p, service="intake", time=at) for p in payloads]
    await send(bootstrap, topic, envelopes)
    return envelopes


async def send(bootstrap: str, topic: str, envelopes: list) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for env in envelopes:
            await producer.send(topic, encode(env), key=env.subject.encode(), headers=kafka_headers(env))
        await producer.flush()
    finally:
        await producer.stop()


async def consume(app, infra, topic, clock) -> int:
    consumer = TopicConsumer(
        service="assignment",
        bootstrap=infra["kafka"],
        topic=topic,
        group_id=f"g-{uuid.uuid4()}",
        load_positions=tracked_partition_positions(app, topic),
        handle_batch=tracked_batch_handler(app, topic, UpstreamPolicy(RULES, AssignmentRules(), clock)),
        worker="consumer",
        dead_letters=TrackedDeadLetters(app, topic, UpstreamPolicy(RULES, AssignmentRules(), clock)),
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_until_caught_up(timeout=30)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
    return consumer.applied


async def test_leads_from_the_topic_are_pooled_or_reported_once_and_recycled_when_due(app, view, infra, fresh_topic, clock):
    pooled = [captured(region) for region in ("上海", "北京", "上海")]
    reported = captured("上海", reported_by="rep-1")
    envelopes = await produce(infra["kafka"], fresh_topic, [*pooled, reported], START)
    assert await consume(app, infra, fresh_topic, clock) == 4
    # A new consumer group, and events republished under the same CloudEvents ids, change nothing.
    await send(infra["kafka"], fresh_topic, envelopes[:2])
    assert await consume(app, infra, fresh_topic, clock) == 0
    recorded = app.recorder.max_notification_id()

    projector = Projector(app, view)
    await asyncio.to_thread(projector.catch_up)
    pool = await asyncio.to_thread(view.pool_page, {}, 10, None)
    assert {row["lead_id"] for row in pool.items} == {p.lead_id for p in pooled}
    shanghai = await asyncio.to_thread(view.pool_page, {"region": "上海"}, 1, None)
    second = await asyncio.to_thread(view.pool_page, {"region": "上海"}, 1, shanghai.next_cursor)
    assert {shanghai.items[0]["lead_id"], second.items[0]["lead_id"]} == {pooled[0].lead_id, pooled[2].lead_id}
    assert second.next_cursor is None
    mine = await asyncio.to_thread(view.rep_page, "rep-1", 10, None)
    assert [(row["lead_id"], row["how"], row["due_reason"]) for row in mine.items] == [
        (reported.lead_id, "report", "no_first_contact")
    ]

    # One pooled lead is claimed and followed up; the reported one is never called.
    app.claim(pooled[0].lead_id, "rep-2", clock())
    clock.advance(timedelta(hours=1))
    follow_up = FollowUpLogged(
        lead_id=pooled[0].lead_id, follow_up_id="f1", rep_id="rep-2", channel="phone", summary="intro", stage="contacted"
    )
    await produce(infra["kafka"], fresh_topic, [follow_up], clock())
    assert await consume(app, infra, fresh_topic, clock) == 1
    assert app.recorder.max_notification_id() > recorded

    recycler = Recycler(app, view, clock, batch_size=1)
    await asyncio.to_thread(projector.catch_up)
    assert await asyncio.to_thread(recycler.tick) == []
    clock.advance(RULES.first_contact_sla)
    released = await asyncio.to_thread(recycler.tick)
    assert [(r.lead_id, r.rep_id, r.reason) for r in released] == [(reported.lead_id, "rep-1", "no_first_contact")]
    await asyncio.to_thread(projector.catch_up)
    assert await asyncio.to_thread(view.due_leads, clock(), 10) == []
    assert reported.lead_id in {row["lead_id"] for row in (await asyncio.to_thread(view.pool_page, {}, 10, None)).items}
    assert app.ownership(pooled[0].lead_id).owner == "rep-2"


def test_the_scheduler_reads_only_due_rows_through_the_deadlines_index(view):
    with view.pool.connection() as conn:
        conn.execute("SET enable_seqscan = off")
        table = view.table.as_string(conn)
        query = f"EXPLAIN SELECT due_at, lead_id FROM {table} WHERE due_at <= now() ORDER BY due_at, lead_id LIMIT 500"
        plan = "\n".join(row[0] for row in conn.execute(query).fetchall())
    assert "ownership_view_due" in plan


def test_a_batch_is_applied_per_lead_in_order_even_over_a_row_that_exists(view):
    registered = {"region": "上海", "industry": None, "grade": "B", "source": "web_form", "captured_at": START, "stage": "new"}
    claimed = {"owner": "rep-1", "how": "claim", "claimed_at": START, "stage": "assigned"}
    assert view.apply([RowChange("a", registered, insert=True)], 0, 1)
    batch = [
        RowChange("a", {**registered, "grade": "C"}, insert=True),  # already there: ignored …
        RowChange("b", registered, insert=True),
        RowChange("a", claimed),  # … but what follows it still applies
        RowChange("b", {"grade": "A"}),
        RowChange("b", claimed),
        RowChange("b", {"owner": None, "stage": "new"}),
    ]
    assert view.apply(batch, 1, 7)
    assert not view.apply(batch, 1, 7)  # a stale position writes nothing
    rows = {row["lead_id"]: row for row in view.pool_page({}, 10, None).items}
    assert set(rows) == {"b"} and rows["b"]["grade"] == "A" and rows["b"]["how"] == "claim"
    owned = view.rep_page("rep-1", 10, None).items
    assert [(row["lead_id"], row["grade"], row["stage"]) for row in owned] == [("a", "B", "assigned")]
    assert view.position() == 7


def test_aware_and_naive_times_in_one_batch_are_each_written_as_a_statement_per_row_would(view):
    registered = {"region": None, "industry": None, "grade": "B", "source": "web_form", "stage": "new"}
    beijing = timezone(timedelta(hours=8))
    batch = [
        RowChange("aware", {**registered, "captured_at": datetime(2026, 1, 1, 12, 0, tzinfo=beijing)}, insert=True),
        RowChange("naive", {**registered, "captured_at": datetime(2026, 1, 1, 12, 0)}, insert=True),
    ]
    assert view.apply(batch, 0, 2)
    with view.pool.connection() as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        rows = dict(conn.execute(sql.SQL("SELECT lead_id, captured_at::text FROM {}").format(view.table)).fetchall())
    # The naive time is read in the session's time zone (UTC here), exactly as a single parameter would be.
    assert rows == {"aware": "2026-01-01 04:00:00+00", "naive": "2026-01-01 12:00:00+00"}
