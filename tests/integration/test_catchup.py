"""shared.catchup on the real broker: the partition it computes is the one the relays' producer used, and a
request waiting on a running TopicConsumer sees an event that was published after it started waiting."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer

from shared.catchup import CatchUp
from shared.consumer import PartitionBatch, TopicConsumer
from shared.events import LeadClaimed, encode, kafka_headers, make_envelope
from shared.positions import TopicPositions, partition_of
from shared.relay import build_producer
from tests.conftest import create_topic, unique

pytestmark = pytest.mark.integration
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def claimed(lead_id: str):
    return make_envelope(LeadClaimed(lead_id=lead_id, rep_id="rep-1", how="claim", protected_until=NOW), service="t", time=NOW)


async def publish(bootstrap: str, topic: str, envelopes) -> None:
    producer = build_producer(bootstrap)  # the relays' own producer settings and partitioner
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send(topic, encode(envelope), key=envelope.subject.encode(), headers=kafka_headers(envelope))
        await producer.flush()
    finally:
        await producer.stop()


async def test_the_partition_of_a_lead_is_where_the_relays_producer_put_it(infra):
    topic = unique("leadflow.catchup")
    await create_topic(infra["kafka"], topic, partitions=6)
    leads = [str(uuid.uuid4()) for _ in range(60)]
    await publish(infra["kafka"], topic, [claimed(lead) for lead in leads])
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=infra["kafka"], auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 20
        while len(found) < len(leads) and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                found.update((record.key.decode(), tp.partition) for record in records)
    finally:
        await consumer.stop()
    assert found == {lead: partition_of(lead, 6) for lead in leads}
    assert len(set(found.values())) > 1


async def test_a_wait_on_a_running_consumer_sees_an_event_published_during_the_grace(infra):
    topic = unique("leadflow.catchup")
    await create_topic(infra["kafka"], topic, partitions=3)
    applied: set[str] = set()

    def handle(batches: list[PartitionBatch]) -> int:
        time.sleep(0.02)  # what a transaction costs: the position moves only once the effects are stored
        applied.update(item.payload.lead_id for batch in batches for item in batch.delivered)
        return sum(len(batch.delivered) for batch in batches)

    positions = TopicPositions()
    consumer = TopicConsumer(
        service="test",
        bootstrap=infra["kafka"],
        topic=topic,
        group_id=unique("g"),
        load_positions=lambda partitions: dict.fromkeys(partitions),
        handle_batch=handle,
        positions=positions,
    )
    running = asyncio.create_task(consumer.run())
    try:
        await publish(infra["kafka"], topic, [claimed(str(uuid.uuid4()))])  # something, so partitions are assigned
        await consumer.wait_until_caught_up(timeout=30)
        lead, nobody = str(uuid.uuid4()), str(uuid.uuid4())

        async def known() -> bool:
            return lead in applied

        catch_up = CatchUp(positions, timeout=2.0, grace=0.5)
        waiting = asyncio.create_task(catch_up.until(lead, known))
        await asyncio.sleep(0.1)  # the lead's claim is still in an outbox when the request arrives
        await publish(infra["kafka"], topic, [claimed(lead)])
        started = time.monotonic()
        caught = await waiting
        assert caught.seen and time.monotonic() - started < 1.0

        async def never() -> bool:
            return nobody in applied

        started = time.monotonic()
        unseen = await catch_up.until(nobody, never)
        assert (unseen.seen, unseen.caught_up) == (False, True)
        assert 0.45 < time.monotonic() - started < 1.5  # the grace, then the partition's end as of then
    finally:
        consumer.stop()
        await asyncio.wait_for(running, 15)
    assert positions.partition_of(lead) is None  # the stopped consumer detached itself
