"""Reading a whole test topic back, for assertions."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from shared.events import Envelope, decode


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
                found.extend((tp.partition, decode(r.value)[0]) for r in records)
            if len(found) >= expect_at_least and not batches:
                break
    finally:
        await consumer.stop()
    return found
