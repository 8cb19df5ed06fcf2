"""Reading the event topic and its dead-letter topic back, raw (records that are not events included)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

DLQ_TOPIC = "leadflow.lead-events.dlq"


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition] | None:
    """The topic's partitions; None if there is no such topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return None
        (described,) = await admin.describe_topics([topic])
        return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets(await partitions_of(bootstrap, topic) or [])
    finally:
        await consumer.stop()


async def read_to_end(bootstrap: str, topic: str, timeout: float = 30) -> list[ConsumerRecord] | None:
    """Every record on ``topic`` up to its end as of now; None if there is no such topic."""
    partitions = await partitions_of(bootstrap, topic)
    if partitions is None:
        return None
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout}s")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def value_of(record: ConsumerRecord) -> dict[str, Any] | None:
    """The record's CloudEvent as a dict; None if it is not a JSON object."""
    try:
        value = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {key: value.decode(errors="replace") for key, value in record.headers}


Record = tuple[bytes, bytes, list[tuple[str, bytes]], int | None]  # key, value, headers, partition (None: by key)


async def produce(bootstrap: str, topic: str, records: list[Record]) -> list[Any]:
    """Send records as they are; their (partition, offset) metadata, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key=key, headers=headers, partition=partition)
            for key, value, headers, partition in records
        ]
        return list(await asyncio.gather(*sent))
    finally:
        await producer.stop()
