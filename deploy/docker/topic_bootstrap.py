"""One-shot bootstrap of LeadFlow's topics: create them (partitions, retained forever) or verify them.

Run once before the services (compose: the ``topic-bootstrap`` service; Kubernetes: the
``leadflow-topic-bootstrap`` Job). Idempotent: an existing topic with the expected partition count and
``retention.ms=-1`` is left alone. An existing topic that differs is reported and the run fails: adding
partitions would move leads to other partitions (breaking per-lead order), and shortening retention
would delete the system's history, so neither is "fixed" silently.
The dead-letter topic ``<topic>.dlq`` (what consumers could not apply, ``docs/operations.md`` "Dead
letters") is created beside it: one partition, retained forever too (a parked record is kept until
someone re-drives or discards it); its retention is verified, its partition count is not.
Exit codes: 0 ready, 1 a topic exists but differs, 2 Kafka not reachable in time.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import timedelta

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import DEFAULT_TOPIC, Duration
from shared.logs import configure_logging

log = logging.getLogger("topic-bootstrap")

TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC_OR_PARTITION = 3
RETAIN_FOREVER = "-1"


class BootstrapSettings(BaseSettings):
    """The same ``LEADFLOW_*`` names the services read, plus the topic's shape."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    kafka_bootstrap: str = "localhost:9092"
    topic: str = DEFAULT_TOPIC
    topic_partitions: int = 6
    topic_replication_factor: int = 1
    bootstrap_timeout: Duration = timedelta(minutes=2)
    log_level: str = "INFO"


async def connect(settings: BootstrapSettings) -> AIOKafkaAdminClient:
    """An admin client, retrying while the broker is still starting (up to the bootstrap timeout)."""
    deadline = time.monotonic() + settings.bootstrap_timeout.total_seconds()
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000)
        try:
            await admin.start()
            return admin
        except KafkaConnectionError as exc:
            await admin.close()
            if time.monotonic() >= deadline:
                raise
            log.info("Kafka not reachable yet; retrying", extra={"bootstrap": settings.kafka_bootstrap, "error": str(exc)})
            await asyncio.sleep(2)


async def described_once_created(admin: AIOKafkaAdminClient, topic: str, timeout: float = 10.0) -> tuple[int, str | None] | None:
    """:func:`describe` of a topic just created: the broker's metadata shows it (and its leaders) a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = await describe(admin, topic)
        except KafkaError:
            if time.monotonic() >= deadline:
                raise
            found = None
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.2)


async def describe(admin: AIOKafkaAdminClient, topic: str) -> tuple[int, str | None] | None:
    """(partition count, retention.ms) of the topic, or None if it does not exist."""
    (metadata,) = await admin.describe_topics([topic])
    if metadata["error_code"] == UNKNOWN_TOPIC_OR_PARTITION:
        return None
    if metadata["error_code"]:
        raise KafkaError(f"describing {topic} failed with error code {metadata['error_code']}")
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    _, _, _, _, entries = response.resources[0]
    retention = next((value for name, value, *_ in entries if name == "retention.ms"), None)
    return len(metadata["partitions"]), retention


async def create(admin: AIOKafkaAdminClient, settings: BootstrapSettings, name: str | None = None, partitions: int = 0) -> None:
    topic = NewTopic(
        name or settings.topic,
        partitions or settings.topic_partitions,
        settings.topic_replication_factor,
        topic_configs={"retention.ms": RETAIN_FOREVER},
    )
    response = await admin.create_topics([topic])
    for name, code, message in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):  # another bootstrap may have won the race
            raise KafkaError(f"creating {name} failed with error code {code}: {message}")


async def bootstrap(settings: BootstrapSettings) -> int:
    try:
        admin = await connect(settings)
    except KafkaConnectionError as exc:
        log.error("Kafka not reachable", extra={"bootstrap": settings.kafka_bootstrap, "error": str(exc)})
        return 2
    try:
        found = await describe(admin, settings.topic)
        if found is None:
            await create(admin, settings)
            log.info("topic created", extra={"topic": settings.topic, "partitions": settings.topic_partitions})
            found = await described_once_created(admin, settings.topic)
        if found is None:
            log.error("topic missing right after it was created", extra={"topic": settings.topic})
            return 1
        partitions, retention = found
        problems = []
        if partitions != settings.topic_partitions:
            problems.append(f"it has {partitions} partitions, expected {settings.topic_partitions}")
        if retention != RETAIN_FOREVER:
            problems.append(
                f"retention.ms is {retention}, expected -1 (kafka-configs.sh --alter --entity-type topics "
                f"--entity-name {settings.topic} --add-config retention.ms=-1)"
            )
        if problems:
            log.error("topic exists but differs: " + "; ".join(problems), extra={"topic": settings.topic})
            return 1
        log.info("topic ready", extra={"topic": settings.topic, "partitions": partitions, "retention_ms": retention})
        return await bootstrap_dead_letters(admin, settings)
    finally:
        await admin.close()


async def bootstrap_dead_letters(admin: AIOKafkaAdminClient, settings: BootstrapSettings) -> int:
    dlq = f"{settings.topic}.dlq"  # as shared.deadletters.dlq_topic names it
    found = await describe(admin, dlq)
    if found is None:
        await create(admin, settings, dlq, partitions=1)
        log.info("dead-letter topic created", extra={"topic": dlq})
        found = await described_once_created(admin, dlq)
    if found is None:
        log.error("dead-letter topic missing right after it was created", extra={"topic": dlq})
        return 1
    partitions, retention = found
    if retention != RETAIN_FOREVER:
        log.error(
            f"dead-letter topic exists but retention.ms is {retention}, expected -1 (kafka-configs.sh --alter"
            f" --entity-type topics --entity-name {dlq} --add-config retention.ms=-1)",
            extra={"topic": dlq},
        )
        return 1
    log.info("dead-letter topic ready", extra={"topic": dlq, "partitions": partitions, "retention_ms": retention})
    return 0


def main() -> int:
    settings = BootstrapSettings()
    configure_logging("topic-bootstrap", settings.log_level)
    return asyncio.run(bootstrap(settings))


if __name__ == "__main__":
    sys.exit(main())
