"""Topics as the broker sees them: their partitions, and creating one that is missing.

The broker's metadata is the truth here (an admin client's metadata request), not a client's cache:
a topic created a moment ago takes a moment to show up in it.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def topic_partitions(bootstrap: str, topic: str, timeout: float = 15) -> list[int]:
    """The topic's partition numbers; a topic just created takes a moment to show up in the metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics([topic])
            partitions = sorted(p["partition"] for d in described if d.get("error_code") == 0 for p in d["partitions"])
            if partitions:
                return partitions
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {topic} has no partitions")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


TOPIC_ALREADY_EXISTS = 36  # Kafka's error code


async def ensure_topic(bootstrap: str, topic: str, *, partitions: int, like: str, configs: dict[str, str] | None = None) -> bool:
    """Create ``topic`` if it is missing (replicated as the topic ``like``), and wait until the broker's
    metadata shows it: a consumer that subscribes to a topic created a moment ago may otherwise be assigned
    none of it. True if this call created it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        described = {d["topic"]: d for d in await admin.describe_topics([topic, like])}
        if described.get(topic, {}).get("error_code") == 0 and described[topic]["partitions"]:
            return False
        replicas = (described.get(like, {}).get("partitions") or [{"replicas": [0]}])[0]["replicas"]
        response = await admin.create_topics([NewTopic(topic, partitions, max(1, len(replicas)), topic_configs=configs or {})])
        for name, code, message in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating topic {name} failed with error code {code}: {message}")
    finally:
        await admin.close()
    await topic_partitions(bootstrap, topic)
    return True
