"""The live feed: what happens to a person's leads, pushed to their open pages (server-sent events).

A supervised worker follows the topic from its end (no consumer group: every console replica sees
every event, and a feed has no history to catch up on) and hands each event that concerns someone to
the :class:`Hub`, which keeps one queue per open page. New assignments go to the rep, recycle warnings
and recycling to the owner, overdue escalations to the manager they escalate to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.events import (
    LEAD_EVENT_TYPES,
    FollowUpTaskOverdue,
    FollowUpTaskScheduled,
    InvalidEvent,
    LeadClaimed,
    LeadReleased,
    decode,
)
from shared.supervisor import WorkerHealth

log = logging.getLogger(__name__)

QUEUE_SIZE = 100  # a page that stops reading loses the oldest news, not the console's memory


@dataclass(frozen=True)
class News:
    """One thing to tell one person: ``kind`` picks the words, ``data`` fills them in."""

    kind: str
    lead_id: str
    data: dict[str, Any]


def news_of(payload: object) -> list[tuple[str, News]]:
    """Who hears of an event, and what: (username, news) pairs. Pure."""
    match payload:
        case LeadClaimed(how="assign" | "auto"):
            return [(payload.rep_id, News("assigned", payload.lead_id, {"by": payload.assigned_by or "auto"}))]
        case FollowUpTaskScheduled(kind="recycle_warning"):
            return [(payload.rep_id, News("recycle_warning", payload.lead_id, {"due_at": payload.due_at.isoformat()}))]
        case LeadReleased(reason="no_first_contact" | "no_follow_up" | "protection_expired"):
            return [(payload.rep_id, News("recycled", payload.lead_id, {"reason": payload.reason}))]
        case FollowUpTaskOverdue():
            heard = [(payload.rep_id, News("overdue", payload.lead_id, {"rep": payload.rep_id}))]
            if payload.escalated_to and payload.escalated_to != payload.rep_id:
                heard.append((payload.escalated_to, News("escalated", payload.lead_id, {"rep": payload.rep_id})))
            return heard
    return []


class Hub:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[News]]] = defaultdict(set)

    def subscribe(self, username: str) -> asyncio.Queue[News]:
        queue: asyncio.Queue[News] = asyncio.Queue(QUEUE_SIZE)
        self._queues[username].add(queue)
        return queue

    def unsubscribe(self, username: str, queue: asyncio.Queue[News]) -> None:
        self._queues[username].discard(queue)
        if not self._queues[username]:
            del self._queues[username]

    def publish(self, username: str, news: News) -> None:
        for queue in self._queues.get(username, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(news)

    @property
    def listeners(self) -> int:
        return sum(len(q) for q in self._queues.values())


class LiveFeed:
    """The worker: topic → hub."""

    def __init__(self, consumer: AIOKafkaConsumer, hub: Hub, health: WorkerHealth) -> None:
        self.consumer = consumer
        self.hub = hub
        self.health = health
        self._stopping = asyncio.Event()

    @classmethod
    def worker(cls, bootstrap: str, topic: str, hub: Hub):
        async def build(health: WorkerHealth) -> LiveFeed:
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest", enable_auto_commit=False
            )
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            return cls(consumer, hub, health)

        return build

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        wanted = {name.encode() for name in LEAD_EVENT_TYPES}
        try:
            while not self._stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=500, max_records=500)
                for records in batches.values():
                    for record in records:
                        kind = next((v for k, v in record.headers or () if k == "ce_type"), None)
                        if kind is not None and kind not in wanted:
                            continue
                        try:
                            _, payload = decode(record.value)
                        except InvalidEvent:
                            continue  # the services that own the record park it; a feed just passes it over
                        for username, news in news_of(payload):
                            self.hub.publish(username, news)
                self.health.progressed()
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
