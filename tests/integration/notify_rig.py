"""What notify's integration tests share: notify's tables in a schema of their own, events fed to its consumer's
batch handler as the topic would deliver them, and real local receivers (HTTP and SMTP)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from psycopg_pool import ConnectionPool

from services.notify.domain.notices import Rules
from services.notify.domain.preferences import Preferences
from services.notify.store.people import People
from services.notify.store.queue import DeliveryQueue
from services.notify.store.subscriptions import Subscriptions
from services.notify.store.tables import Tables
from services.notify.store.topic import TopicWriter
from shared.consumer import Delivered, PartitionBatch
from shared.events import AnyPayload, encode, make_envelope
from tests.mailbox import Mailbox

__all__ = ["RULES", "Mailbox", "Receiver", "Rig", "free_port", "until"]
from shared.eventstore import read_model_pool

RULES = Rules(first_contact_sla=timedelta(hours=48), due_soon_before=timedelta(minutes=30), max_event_age=timedelta(hours=1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rig:
    """notify's stores over one schema, and a topic that exists only as the batches handed to the writer."""

    def __init__(self, database_url: str, schema: str, clock, defaults: Preferences | None = None) -> None:
        self.tables = Tables(schema)
        self.tables.ensure(database_url)
        self.pool: ConnectionPool = read_model_pool(database_url, 6)
        self.pool.open(True, 10)
        self.clock = clock
        self.writer = TopicWriter(self.pool, self.tables, "topic", RULES, clock)
        self.queue = DeliveryQueue(self.pool, self.tables, lease=timedelta(seconds=30))
        self.subscriptions = Subscriptions(self.pool, self.tables)
        self.people = People(self.pool, self.tables, defaults or Preferences(channels=("email", "feed")))
        self.offsets: dict[int, int] = defaultdict(int)

    def close(self) -> None:
        self.pool.close()

    def delivered(self, payload: AnyPayload, *, partition: int = 0, at: datetime | None = None, event_id: str | None = None):
        envelope = make_envelope(payload, service="test", time=at or self.clock(), event_id=event_id)
        offset = self.offsets[partition]
        self.offsets[partition] += 1
        return Delivered(partition, offset, envelope, payload, encode(envelope))

    def publish(self, *payloads: AnyPayload, partition: int = 0, at: datetime | None = None) -> list[Delivered]:
        """Apply events as one poll of one partition would bring them; returns what was applied."""
        items = [self.delivered(p, partition=partition, at=at) for p in payloads]
        self.apply(items)
        return items

    def apply(self, items: list[Delivered]) -> int:
        by_partition: dict[int, list[Delivered]] = defaultdict(list)
        for item in items:
            by_partition[item.partition].append(item)
        batches = [PartitionBatch(p, ds, ds[-1].offset + 1) for p, ds in sorted(by_partition.items())]
        return self.writer.handle_batch(batches)

    def scalar(self, sql: str, *params: Any) -> Any:
        with self.pool.connection() as conn:
            return conn.execute(self.tables.q(sql), params).fetchone()[0]

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        with self.pool.connection() as conn:
            return conn.execute(self.tables.q(sql), params).fetchall()

    def subscribe(self, url: str, secret: str, types: list[str] | None = None, owner: str = "admin-1") -> uuid.UUID:
        sid = uuid.uuid4()
        # Created a moment before "now": events stamped now belong to it.
        self.subscriptions.create(sid, url, types, secret, None, owner, self.clock() - timedelta(seconds=1))
        return sid


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    """A real HTTP receiver on a free port: fails the first ``failures`` attempts of each webhook-id (503), or
    answers ``status``; waits ``delay`` seconds before answering."""

    failures: int = 0
    status: int = 204
    delay: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen = sum(1 for h in self.hits if h.headers.get("webhook-id") == headers.get("webhook-id"))
        status = 503 if seen < self.failures else self.status
        if self.delay:
            await asyncio.sleep(self.delay)
        self.hits.append(Hit(headers, body, time.monotonic(), status))
        return web.Response(status=status, text="not yet" if status == 503 else "")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def accepted(self) -> list[Hit]:
        return [h for h in self.hits if 200 <= h.status < 300]


async def until(check, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"not met within {timeout}s")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
