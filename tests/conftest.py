"""Where the tests find Kafka and PostgreSQL.

1. ``LEADFLOW_KAFKA_BOOTSTRAP`` / ``LEADFLOW_DATABASE_URL`` when set (``make test`` sets them to the local stack);
2. else testcontainers, when a Docker daemon answers;
3. else the local stack's defaults.
Whatever is chosen must answer: a test that needs a broker or a database fails without one, it never skips.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.config import DEFAULT_DATABASE_URL


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def infra() -> Iterator[dict[str, str]]:
    """``{"kafka": bootstrap, "database_url": url}`` of a real broker and server."""
    kafka = os.environ.get("LEADFLOW_KAFKA_BOOTSTRAP")
    db = os.environ.get("LEADFLOW_DATABASE_URL")
    containers = []
    if (kafka is None or db is None) and _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        if kafka is None:
            k = KafkaContainer().with_kraft()
            k.start()
            containers.append(k)
            kafka = k.get_bootstrap_server()
        if db is None:
            p = PostgresContainer("postgres:15", driver=None)
            p.start()
            containers.append(p)
            db = p.get_connection_url()
    kafka = kafka or "localhost:9092"
    db = db or DEFAULT_DATABASE_URL
    host, _, port = kafka.split(",")[0].rpartition(":")
    if not _reachable(host or "localhost", int(port)):
        pytest.fail(f"No Kafka broker at {kafka}. Start the local stack (make stack-up) or set LEADFLOW_KAFKA_BOOTSTRAP.")
    url = urlsplit(db)
    if not _reachable(url.hostname or "localhost", url.port or 5432):
        pytest.fail(f"No PostgreSQL at {db}. Start the local stack (make stack-up) or set LEADFLOW_DATABASE_URL.")
    os.environ["LEADFLOW_KAFKA_BOOTSTRAP"] = kafka
    os.environ["LEADFLOW_DATABASE_URL"] = db
    yield {"kafka": kafka, "database_url": db}
    for container in containers:
        container.stop()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fresh_schema(infra: dict[str, str]) -> Iterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    schema = unique("t")
    with psycopg.connect(infra["database_url"], autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(infra["database_url"], autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs={"retention.ms": "-1"})])
    finally:
        await admin.close()
    await asyncio.sleep(0.2)


@pytest.fixture
async def fresh_topic(infra: dict[str, str]) -> AsyncIterator[str]:
    """A topic of its own for one test (3 partitions, retained forever)."""
    name = unique("leadflow.test")
    await create_topic(infra["kafka"], name)
    yield name
