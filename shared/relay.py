"""The outbox relay: publish to Kafka exactly what the event store recorded, in order, at least once.

It follows the application's notification log, maps each recorded domain event to zero or more
public events with the service's explicit mapping, sends them with an idempotent producer, and
only after Kafka acknowledged the whole batch records the last notification id in the same
tracking table the service uses for its consumers. After a crash it resumes from that id: events
may be published twice (with the same CloudEvents ``id``), never lost and never reordered per lead.
Several replicas of a service may run, and the relay may run in a process of its own: a PostgreSQL
advisory lock makes one of them the publisher and the others standbys that take over when its session
ends. The publisher LISTENs on the channel the event store NOTIFYs at each commit, so it publishes
what any process recorded at once, not at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification, Tracking
from psycopg import sql

from shared.config import ServiceSettings
from shared.events import Envelope, Payload, deterministic_event_id, encode, kafka_headers, make_envelope
from shared.eventstore import EventSourcedApplication, advisory_key
from shared.follow import FollowLoop
from shared.metrics import EVENTS_PUBLISHED, RELAY_BACKLOG, RELAY_POSITION
from shared.supervisor import Build, WorkerHealth

log = logging.getLogger(__name__)

RELAY_TRACKING_NAME = "kafka-relay"

# Maps one recorded domain event to the public events it stands for (often one, sometimes none).
IntegrationMapping = Callable[[DomainEventProtocol, Notification], Sequence[Envelope]]


def _lock_key(app: EventSourcedApplication) -> int:
    """The relay's advisory lock key per (schema, application)."""
    return advisory_key(f"leadflow-relay:{app.env.get('POSTGRES_SCHEMA')}:{app.name}")


def envelope_of(
    event: DomainEventProtocol,
    payload: Payload,
    *,
    service: str,
    time: datetime,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope:
    """The public envelope of a recorded domain event. Its id is derived from (service, aggregate, version),
    so a re-publication after a crash carries the same CloudEvents ``id`` and consumers drop it.

    ``payload`` must come straight from its model's constructor (as every service's mapping builds it),
    which validated it: the envelope does not validate it a second time."""
    return make_envelope(
        payload,
        service=service,
        time=time,
        event_id=deterministic_event_id(service, event.originator_id, event.originator_version),
        correlation_id=correlation_id,
        causation_id=causation_id,
        just_built=True,
    )


def build_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        request_timeout_ms=30000,
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        app: EventSourcedApplication,
        service: str,
        producer: AIOKafkaProducer,
        topic: str,
        mapping: IntegrationMapping,
        batch_size: int = 2000,
        poll_interval: float = 0.2,
        linger: float = 0.03,
        health: WorkerHealth | None = None,
        owns_producer: bool = False,
    ) -> None:
        """``owns_producer``: the relay stops the producer when :meth:`run` ends (a worker built afresh
        for every start brings its own client, and must not leave it open after a crash)."""
        self.app = app
        self.service = service
        self.producer = producer
        self.topic = topic
        self.mapping = mapping
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # Once caught up, wait this long before reading again, so that a stream of small commits (one per
        # request) is published in a few batches rather than one read, send and position write per commit.
        self.linger = linger
        self.position = 0
        self.health = health
        self.owns_producer = owns_producer
        self.follow = FollowLoop(poll_interval, health)
        self.published = 0

    @classmethod
    def for_service(
        cls,
        app: EventSourcedApplication,
        service: str,
        producer: AIOKafkaProducer,
        settings: ServiceSettings,
        mapping: IntegrationMapping,
        **options: Any,
    ) -> OutboxRelay:
        """A service's relay, configured from its settings (topic, batch size, poll interval)."""
        return cls(
            app=app,
            service=service,
            producer=producer,
            topic=settings.topic,
            mapping=mapping,
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval.total_seconds(),
            **options,
        )

    @classmethod
    def worker(cls, app: EventSourcedApplication, service: str, settings: ServiceSettings, mapping: IntegrationMapping) -> Build:
        """How the supervisor builds this service's relay: with a producer of its own on every start."""

        async def build(health: WorkerHealth) -> OutboxRelay:
            producer = build_producer(settings.kafka_bootstrap)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            return cls.for_service(app, service, producer, settings, mapping, health=health, owns_producer=True)

        return build

    def stop(self) -> None:
        self.follow.stop()

    async def run(self) -> None:
        """Publish until stopped. With several replicas, only the holder of the leader lock publishes."""
        try:
            await self._run()
        finally:
            if self.owns_producer:
                await self.producer.stop()

    async def _run(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.app.conninfo, autocommit=True) as lock_conn:
            if not await self._lead(lock_conn):
                return
            self.position = await asyncio.to_thread(self.app.tracked_position, RELAY_TRACKING_NAME) or 0
            log.info("relay leading", extra={"position": self.position})

            caught_up = True

            async def step() -> int:
                nonlocal caught_up
                if caught_up and not self.follow.stopping:
                    await asyncio.sleep(self.linger)  # not cut short by nudges: they are what it waits for
                published = await self.publish_once()
                caught_up = published < self.batch_size
                return published

            async def check_lock_session() -> None:
                # The lock lives as long as this session; a dead session means another replica may lead.
                await lock_conn.execute("SELECT 1")

            helpers = [
                asyncio.create_task(self._listen(), name="relay-listen"),
                asyncio.create_task(self._watch_backlog(), name="relay-backlog"),
            ]
            try:
                await self.follow.run(step, between=check_lock_session)
            finally:
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
            log.info("relay stopped", extra={"position": self.position})

    async def _listen(self) -> None:
        """Wake up at each commit to the event store (eventsourcing NOTIFYs its channel in every save),
        whichever process made it. Should the listening connection fail, the poll interval still holds."""
        listen = sql.SQL("LISTEN {}").format(sql.Identifier(self.app.recorder.channel_name))
        while not self.follow.stopping:
            try:
                async with await psycopg.AsyncConnection.connect(self.app.conninfo, autocommit=True) as conn:
                    await conn.execute(listen)
                    self.follow.nudge()  # anything committed before LISTEN took effect
                    async for _ in conn.notifies():
                        self.follow.nudge()
            except Exception as exc:
                log.warning("relay cannot listen for commits; polling only", extra={"error": repr(exc)})
                await asyncio.sleep(max(self.poll_interval, 1.0))

    async def _lead(self, lock_conn: psycopg.AsyncConnection) -> bool:
        """Wait (as a standby) until this replica holds the service's relay lock; False if stopped first."""
        key = _lock_key(self.app)
        while not self.follow.stopping:
            cursor = await lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            row = await cursor.fetchone()
            if row and row[0]:
                return True
            log.debug("relay standing by: another replica leads")
            await self.follow.sleep(max(self.poll_interval, 1.0))
        return False

    async def publish_once(self) -> int:
        """Publish the next batch, if any; returns how many notifications it covered."""
        notifications = await asyncio.to_thread(self.app.recorder.select_notifications, self.position + 1, self.batch_size)
        if not notifications:
            self._set_backlog(0)
            return 0
        envelopes: list[Envelope] = []
        for notification in notifications:
            domain_event = self.app.mapper.to_domain_event(notification)
            envelopes.extend(self.mapping(domain_event, notification))
        futures = []
        for envelope in envelopes:
            futures.append(
                await self.producer.send(
                    self.topic,
                    value=encode(envelope),
                    key=envelope.subject.encode(),
                    headers=kafka_headers(envelope),
                )
            )
        if futures:
            await asyncio.gather(*futures)
        last_id = notifications[-1].id
        await asyncio.to_thread(self.app.recorder.insert_tracking, Tracking(RELAY_TRACKING_NAME, last_id))
        self.position = last_id
        for event_type, count in Counter(envelope.type for envelope in envelopes).items():
            EVENTS_PUBLISHED.labels(self.service, event_type).inc(count)
        self.published += len(envelopes)
        RELAY_POSITION.labels(self.service).set(last_id)
        if len(notifications) < self.batch_size:
            self._set_backlog(0)  # caught up with what was committed when we read
        return len(notifications)

    def _set_backlog(self, backlog: int) -> None:
        RELAY_BACKLOG.labels(self.service).set(backlog)
        if self.health is not None:
            self.health.report_lag(backlog)

    async def _watch_backlog(self, interval: float = 1.0) -> None:
        """The real backlog, read from the event store while a publish may be stuck (Kafka down): the gauge
        and the worker's lag then say how much is waiting, and a relay that cannot publish shows as stalled."""
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # the database may be what is down; readiness says so
                newest = await asyncio.to_thread(self.app.recorder.max_notification_id)
                self._set_backlog(max(0, (newest or 0) - self.position))

    async def drain(self, timeout: float = 10.0) -> None:
        """Publish everything recorded so far; only while :meth:`run` is not running (tests, tools)."""
        async with asyncio.timeout(timeout):
            while await self.publish_once():
                pass
