"""The outbox relay publishes exactly what was recorded, in order per lead, and resumes after a crash."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from eventsourcing.domain import Aggregate, event

from shared.config import ServiceSettings
from shared.events import LeadStageChanged, deterministic_event_id, make_envelope
from shared.eventstore import EventSourcedApplication, eventsourcing_env
from shared.relay import RELAY_TRACKING_NAME, OutboxRelay, build_producer
from tests.integration.kafka_reading import read_all

pytestmark = pytest.mark.integration

STAGES = ["new", "assigned", "contacted", "qualified", "quoted", "negotiating", "won"]


class Pipeline(Aggregate):
    @event("Started")
    def __init__(self) -> None:
        self.step = 0

    @event("Moved")
    def move(self) -> None:
        self.step += 1


class PipelineApp(EventSourcedApplication):
    name = "relaytest"


def mapping(domain_event, notification):
    if not isinstance(domain_event, Pipeline.Moved):
        return []  # not every internal event is public
    v = domain_event.originator_version
    payload = LeadStageChanged(
        lead_id=str(domain_event.originator_id), from_stage=STAGES[(v - 2) % 7], to_stage=STAGES[(v - 1) % 7]
    )
    return [
        make_envelope(
            payload,
            service="relaytest",
            time=domain_event.timestamp,
            event_id=deterministic_event_id("relaytest", domain_event.originator_id, v),
        )
    ]


def record_history(app: PipelineApp, leads: int, moves: int) -> dict[str, list[str]]:
    """Record interleaved moves of several leads; return the expected event ids per lead, in order."""
    pipelines = [Pipeline() for _ in range(leads)]
    app.save(*pipelines)
    expected: dict[str, list[str]] = defaultdict(list)
    for _ in range(moves):
        for p in pipelines:
            p.move()
            expected[str(p.id)].append(deterministic_event_id("relaytest", p.id, p.version))
        app.save(*pipelines)
    return expected


def per_lead(found) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for partition, envelope in found:
        ids[envelope.subject].append(envelope.id)
        partitions[envelope.subject].add(partition)
    assert all(len(p) == 1 for p in partitions.values()), "a lead's events must share one partition"
    return ids


@pytest.fixture
def app(infra, fresh_schema):
    settings = ServiceSettings(database_url=infra["database_url"])
    application = PipelineApp(eventsourcing_env(settings, fresh_schema))
    yield application
    application.close()


async def make_relay(app, infra, topic, batch_size=1000):
    producer = build_producer(infra["kafka"])
    await producer.start()
    return producer, OutboxRelay(
        app=app, service="relaytest", producer=producer, topic=topic, mapping=mapping, batch_size=batch_size
    )


async def test_relay_publishes_exactly_what_was_recorded_in_order(app, infra, fresh_topic):
    expected = await asyncio.to_thread(record_history, app, 12, 25)
    producer, relay = await make_relay(app, infra, fresh_topic, batch_size=64)
    try:
        relay.position = 0
        await relay.drain()
    finally:
        await producer.stop()
    found = await read_all(infra["kafka"], fresh_topic, expect_at_least=300)
    assert per_lead(found) == expected  # exactly the recorded events, each once, in recorded order per lead
    assert app.tracked_position(RELAY_TRACKING_NAME) == app.recorder.max_notification_id()


async def test_relay_resumes_after_a_crash_without_loss(app, infra, fresh_topic, monkeypatch):
    expected = await asyncio.to_thread(record_history, app, 5, 40)
    producer, relay = await make_relay(app, infra, fresh_topic, batch_size=30)
    await relay.publish_once()
    await relay.publish_once()
    # Crash after Kafka acknowledged the third batch but before its position was recorded.
    original = app.recorder.insert_tracking

    def crash(tracking):
        raise ConnectionError("power cut")

    monkeypatch.setattr(app.recorder, "insert_tracking", crash)
    with pytest.raises(ConnectionError):
        await relay.publish_once()
    monkeypatch.setattr(app.recorder, "insert_tracking", original)
    await producer.stop()

    # A new process resumes from the recorded position.
    producer, restarted = await make_relay(app, infra, fresh_topic, batch_size=30)
    try:
        task = asyncio.create_task(restarted.run())
        await asyncio.sleep(0.1)
        more = Pipeline()
        more.move()
        await asyncio.to_thread(app.save, more)
        expected[str(more.id)] = [deterministic_event_id("relaytest", more.id, 2)]
        for _ in range(100):
            if restarted.position == app.recorder.max_notification_id():
                break
            await asyncio.sleep(0.05)
        restarted.stop()
        await asyncio.wait_for(task, 10)
    finally:
        await producer.stop()
    found = await read_all(infra["kafka"], fresh_topic, expect_at_least=201)
    got = per_lead(found)
    # The re-sent batch appears twice with the same ids; once de-duplicated, nothing is lost or reordered.
    assert sum(len(v) for v in got.values()) > 201
    deduplicated = {lead: list(dict.fromkeys(ids)) for lead, ids in got.items()}
    assert deduplicated == expected


async def test_only_one_replica_publishes_and_a_standby_takes_over(app, infra, fresh_topic):
    expected = await asyncio.to_thread(record_history, app, 4, 10)
    producer_a, leader = await make_relay(app, infra, fresh_topic)
    producer_b, standby = await make_relay(app, infra, fresh_topic)
    lead_task = asyncio.create_task(leader.run())
    for _ in range(100):
        if leader.position == app.recorder.max_notification_id():
            break
        await asyncio.sleep(0.05)
    standby_task = asyncio.create_task(standby.run())
    more = Pipeline()
    more.move()
    await asyncio.to_thread(app.save, more)
    expected[str(more.id)] = [deterministic_event_id("relaytest", more.id, 2)]
    await asyncio.sleep(0.5)
    assert standby.published == 0, "a standby must not publish while the leader runs"
    leader.stop()
    await asyncio.wait_for(lead_task, 10)
    late = Pipeline()
    late.move()
    await asyncio.to_thread(app.save, late)
    expected[str(late.id)] = [deterministic_event_id("relaytest", late.id, 2)]
    for _ in range(100):
        if standby.position == app.recorder.max_notification_id():
            break
        await asyncio.sleep(0.1)
    standby.stop()
    await asyncio.wait_for(standby_task, 10)
    await producer_a.stop()
    await producer_b.stop()
    assert standby.published == 1
    found = await read_all(infra["kafka"], fresh_topic, expect_at_least=42)
    assert per_lead(found) == expected  # exactly once each: no replica published what another had


async def test_relay_publishes_what_another_process_recorded_without_waiting_for_its_poll(app, infra, fresh_schema, fresh_topic):
    """The relay may run in a process of its own (intake does): the commit's NOTIFY wakes it, not the poll."""
    producer = build_producer(infra["kafka"])
    await producer.start()
    relay = OutboxRelay(app=app, service="relaytest", producer=producer, topic=fresh_topic, mapping=mapping, poll_interval=60.0)
    running = asyncio.create_task(relay.run())
    # Another application object on the same schema stands for the API process; nobody nudges the relay.
    writer = PipelineApp(eventsourcing_env(ServiceSettings(database_url=infra["database_url"]), fresh_schema))
    try:
        await asyncio.sleep(1.0)  # leading and listening
        pipeline = Pipeline()
        pipeline.move()
        await asyncio.to_thread(writer.save, pipeline)
        newest = writer.recorder.max_notification_id()
        for _ in range(50):
            if relay.position == newest:
                break
            await asyncio.sleep(0.1)
        assert relay.position == newest, "the relay waited for its 60 s poll instead of waking at the commit"
    finally:
        relay.stop()
        await asyncio.wait_for(running, 10)
        await producer.stop()
        writer.close()
    found = await read_all(infra["kafka"], fresh_topic, expect_at_least=1)
    assert per_lead(found) == {str(pipeline.id): [deterministic_event_id("relaytest", pipeline.id, 2)]}
