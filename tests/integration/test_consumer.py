"""The consumer helper: effects and positions in one transaction, duplicates ignored, restarts exact."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from uuid import NAMESPACE_URL, uuid5

import pytest
from aiokafka import AIOKafkaProducer
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking

from shared.config import ServiceSettings
from shared.consumer import Delivered, PartitionBatch, TopicConsumer, tracking_name
from shared.deadletters.tracked import TrackedDeadLetters
from shared.events import LeadClaimed, RepJoined, encode, kafka_headers, make_envelope
from shared.eventstore import (
    EventSourcedApplication,
    PartlyApplied,
    UnitOfWork,
    apply_tracked_batch,
    eventsourcing_env,
    tracked_batch_handler,
    tracked_partition_positions,
)

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 23, tzinfo=UTC)


class Ownership(Aggregate):
    @staticmethod
    def create_id(lead_id: str) -> uuid.UUID:
        return uuid5(NAMESPACE_URL, lead_id)

    @event("Started")
    def __init__(self, lead_id: str) -> None:
        self.lead_id = lead_id
        self.claims: list[str] = []

    @event("Claimed")
    def claim(self, rep_id: str) -> None:
        self.claims.append(rep_id)


class OwnershipApp(EventSourcedApplication):
    name = "consumertest"


def apply(unit: UnitOfWork, item: Delivered) -> None:
    lead_id = item.payload.lead_id
    ownership = unit.get(Ownership.create_id(lead_id))
    if ownership is None:
        ownership = Ownership(lead_id)
        unit.add(ownership)
    ownership.claim(item.payload.rep_id)


@pytest.fixture
def app(infra, fresh_schema):
    application = OwnershipApp(eventsourcing_env(ServiceSettings(database_url=infra["database_url"]), fresh_schema))
    yield application
    application.close()


def envelopes(leads: int, claims: int):
    out = []
    for n in range(claims):
        for lead in range(leads):
            payload = LeadClaimed(lead_id=f"lead-{lead}", rep_id=f"rep-{n}", how="claim", protected_until=NOW)
            out.append(make_envelope(payload, service="test", time=NOW))
    return out


async def produce(bootstrap, topic, items):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for env in items:
            await producer.send(topic, encode(env), key=env.subject.encode(), headers=kafka_headers(env))
        await producer.flush()
    finally:
        await producer.stop()


async def consume_until_caught_up(app, infra, topic, group):
    consumer = TopicConsumer(
        service="test",
        bootstrap=infra["kafka"],
        topic=topic,
        group_id=group,
        load_positions=tracked_partition_positions(app, topic),
        handle_batch=tracked_batch_handler(app, topic, apply),
        worker="consumer",
        dead_letters=TrackedDeadLetters(app, topic, apply),
        batch_size=50,
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_until_caught_up(timeout=30)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
    return consumer


def claims_of(app, lead_count):
    return {f"lead-{n}": app.repository.get(Ownership.create_id(f"lead-{n}")).claims for n in range(lead_count)}


async def test_consumer_applies_each_event_once_across_restarts_and_duplicates(app, infra, fresh_topic):
    items = envelopes(leads=8, claims=30)
    await produce(infra["kafka"], fresh_topic, items)
    first = await consume_until_caught_up(app, infra, fresh_topic, group=f"g-{uuid.uuid4()}")
    assert first.applied == 240
    expected = {f"lead-{n}": [f"rep-{k}" for k in range(30)] for n in range(8)}
    assert claims_of(app, 8) == expected
    events_before = app.recorder.max_notification_id()

    # A brand-new consumer group starts at Kafka offset 0, but the stored positions say "done".
    again = await consume_until_caught_up(app, infra, fresh_topic, group=f"g-{uuid.uuid4()}")
    assert again.applied == 0
    assert app.recorder.max_notification_id() == events_before

    # The relay republishes after a crash: same CloudEvents ids at later offsets change nothing.
    await produce(infra["kafka"], fresh_topic, items[:40])
    await consume_until_caught_up(app, infra, fresh_topic, group=f"g-{uuid.uuid4()}")
    assert claims_of(app, 8) == expected
    assert app.recorder.max_notification_id() == events_before
    # ... while a genuinely new event still applies.
    new = envelopes(leads=1, claims=1)[0]
    await produce(infra["kafka"], fresh_topic, [new])
    await consume_until_caught_up(app, infra, fresh_topic, group=f"g-{uuid.uuid4()}")
    assert claims_of(app, 1)["lead-0"] == [*expected["lead-0"], "rep-0"]


def test_applying_the_same_batch_twice_changes_nothing(app):
    batch = [Delivered(0, n, env, env.payload()) for n, env in enumerate(envelopes(leads=3, claims=2))]
    tracking = Tracking(tracking_name("t", 0), len(batch))
    assert apply_tracked_batch(app, [tracking], batch, apply) == 6
    recorded = app.recorder.max_notification_id()
    assert apply_tracked_batch(app, [tracking], batch, apply) == 0
    assert app.recorder.max_notification_id() == recorded
    assert claims_of(app, 3)["lead-2"] == ["rep-0", "rep-1"]


def test_a_concurrent_command_conflict_is_retried_from_fresh_state(app):
    env = envelopes(leads=1, claims=1)[0]
    ownership = Ownership("lead-0")
    app.save(ownership)
    calls = []

    def apply_racing(unit: UnitOfWork, item: Delivered) -> None:
        agg = unit.get(Ownership.create_id("lead-0"))
        if not calls:  # a command saves the same aggregate between our read and our write
            other = app.repository.get(agg.id)
            other.claim("rep-command")
            app.save(other)
        calls.append(1)
        agg.claim(item.payload.rep_id)

    assert apply_tracked_batch(app, [Tracking("t:0", 1)], [Delivered(0, 0, env, env.payload())], apply_racing) == 1
    assert len(calls) == 2
    assert app.repository.get(ownership.id).claims == ["rep-command", "rep-0"]


def test_large_batches_record_positions_and_ids_together(app):
    # Regression: with 1,000 ids in one transaction the tracking insert once read the wrong result.
    offset = 0
    for _ in range(5):
        batch = [Delivered(0, offset + n, env, env.payload()) for n, env in enumerate(envelopes(leads=100, claims=10))]
        offset += len(batch)
        assert apply_tracked_batch(app, [Tracking("t:0", offset)], batch, apply) == 1000
    assert app.recorder.max_tracking_id("t:0") == 5000
    assert len(app.recorder.already_processed([d.envelope.id for d in batch])) == 1000


def test_preload_answers_absent_aggregates_without_asking_one_by_one(app, monkeypatch):
    known = Ownership("lead-known")
    app.save(known)
    unit = UnitOfWork(app)
    unit.preload([known.id, Ownership.create_id("lead-new")])
    monkeypatch.setattr(app.repository, "get", lambda *a, **k: pytest.fail("absent aggregates are not looked up"))
    assert unit.get(Ownership.create_id("lead-new")) is None
    monkeypatch.undo()
    assert unit.get(known.id).lead_id == "lead-known"
    batch = [Delivered(0, n, env, env.payload()) for n, env in enumerate(envelopes(leads=50, claims=1))]
    applied = apply_tracked_batch(
        app, [Tracking("t:0", 50)], batch, apply, aggregate_ids=lambda d: [Ownership.create_id(d.payload.lead_id)]
    )
    assert applied == 50
    assert claims_of(app, 50)["lead-49"] == ["rep-0"]


def test_a_poll_spanning_partitions_is_one_transaction_or_per_partition_when_one_was_applied(app):
    events = envelopes(leads=4, claims=2)
    on_0 = [Delivered(0, n, env, env.payload()) for n, env in enumerate(events[:4])]
    on_1 = [Delivered(1, n, env, env.payload()) for n, env in enumerate(events[4:])]
    handle = tracked_batch_handler(app, "t", apply)
    assert handle([PartitionBatch(0, on_0, len(on_0))]) == len(on_0)
    # Partition 0's batch was applied before (another replica had it): partition 1's still applies, once.
    assert handle([PartitionBatch(0, on_0, len(on_0)), PartitionBatch(1, on_1, len(on_1))]) == len(on_1)
    assert handle([PartitionBatch(0, on_0, len(on_0)), PartitionBatch(1, on_1, len(on_1))]) == 0
    assert (app.recorder.max_tracking_id("t:0"), app.recorder.max_tracking_id("t:1")) == (len(on_0), len(on_1))
    assert claims_of(app, 4) == {f"lead-{n}": ["rep-0", "rep-1"] for n in range(4)}
    # Both positions move in one transaction: a stale one refuses the whole save, nothing half-recorded.
    more = [Delivered(1, len(on_1), env, env.payload()) for env in envelopes(leads=1, claims=1)]
    stale = [Tracking("t:0", len(on_0)), Tracking("t:1", len(on_1) + 1)]
    with pytest.raises(PartlyApplied):
        apply_tracked_batch(app, stale, more, apply)
    assert app.recorder.max_tracking_id("t:1") == len(on_1)


async def test_a_lead_consumer_passes_over_the_directorys_events_with_or_without_their_header(app, infra, fresh_topic):
    joined = make_envelope(
        RepJoined(rep_id="rep-new", display_name="新同事", role="rep", team="east"), service="console", time=NOW
    )
    assert joined.subject == "rep-new"
    producer = AIOKafkaProducer(bootstrap_servers=infra["kafka"])
    await producer.start()
    try:
        await producer.send_and_wait(fresh_topic, encode(joined), key=b"rep-new", headers=kafka_headers(joined))
        # A foreign producer that sends no ce_type header: the decoded type still tells.
        await producer.send_and_wait(fresh_topic, encode(joined.model_copy(update={"id": str(uuid.uuid4())})), key=b"rep-new")
    finally:
        await producer.stop()
    await produce(infra["kafka"], fresh_topic, envelopes(leads=2, claims=1))
    consumer = await consume_until_caught_up(app, infra, fresh_topic, group=f"g-{uuid.uuid4()}")
    assert consumer.applied == 2
    assert claims_of(app, 2) == {"lead-0": ["rep-0"], "lead-1": ["rep-0"]}
