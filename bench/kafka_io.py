"""Raw Kafka I/O for the baselines and for watching the services' topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from bench.progress import Progress
from shared.relay import build_producer
from shared.topics import topic_partitions

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


async def produce(bootstrap: str, topic: str, records: Iterable[Record], *, total: int, label: str) -> float:
    """Send every record with the services' producer settings; returns seconds until all were acked."""
    producer = build_producer(bootstrap)
    await producer.start()
    progress = Progress(label, total)
    try:
        started = time.perf_counter()
        pending: list[asyncio.Future] = []
        for sent, (key, value, headers) in enumerate(records, 1):
            pending.append(await producer.send(topic, value=value, key=key, headers=headers))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                progress.update(sent)
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    progress.finish()
    return elapsed


async def records_in(bootstrap: str, topic: str) -> int:
    """How many records the topic holds: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


class TopicReader:
    """A group-less consumer over every partition of a topic, for measuring (never commits)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            group_id=None,
            max_poll_records=5000,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    async def start(self, *, from_end: bool) -> None:
        partitions = [TopicPartition(self.topic, p) for p in await topic_partitions(self.bootstrap, self.topic)]
        await self.consumer.start()
        self.consumer.assign(partitions)
        if from_end:
            await self.consumer.seek_to_end(*partitions)
        else:
            await self.consumer.seek_to_beginning(*partitions)
        for tp in partitions:  # resolve the positions now, so nothing produced from here on is missed
            await self.consumer.position(tp)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def read(
        self,
        on_record: Callable[[ConsumerRecord], None],
        done: Callable[[], bool],
        *,
        timeout: float,
        progress: Progress | None = None,
    ) -> float:
        """Feed records to ``on_record`` until ``done()``; returns the perf_counter time it became true."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            if done():
                return time.perf_counter()
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            for records in batches.values():
                for record in records:
                    on_record(record)
                seen += len(records)
            if progress is not None:
                progress.update(seen)
        raise TimeoutError(f"gave up reading {self.topic} after {timeout:.0f}s ({seen:,} records seen)")
