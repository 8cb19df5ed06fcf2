"""Reading a whole test topic back, for assertions."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer

from shared.events import Envelope, InvalidEvent, decode


async def read_all(bootstrap: str, topic: str, expect_at_least: int, timeout_s: float = 20.0) -> list[tuple[int, Envelope]]:
    """Every event on ``topic`` as (partition, envelope), in partition order; waits for ``expect_at_least``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    found: list[tuple[int, Envelope]] = []
    try:
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for tp, records in batches.items():
                for record in records:
                    with contextlib.suppress(InvalidEvent):  # a poison record some test wrote on purpose
                        found.append((tp.partition, decode(record.value)[0]))
            if len(found) >= expect_at_least and not batches:
                break
    finally:
        await consumer.stop()
    return found
