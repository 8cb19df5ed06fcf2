"""Consuming the topic with an exactly-once effect.

Kafka's committed offsets are only a hint here. The truth of how far a service got is stored in
PostgreSQL in the same transaction as what applying the events wrote: an eventsourcing tracking
record per ``topic:partition`` for event-sourced services, a positions table for projections.
On (re)assignment the consumer seeks to those stored positions. Duplicated events (the relay
republishes after a crash, with the same CloudEvents ``id``) are ignored by the applying side.

A record the consumer cannot apply is parked, never retried forever (:mod:`shared.deadletters`): one
that is not a valid event at once; one the handler fails on after bounded retries once bisection has
shown it is that record (every other record of its batch is applied, once). An outage (a transient
error) parks nothing: it raises, and the supervisor restarts the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from shared.deadletters import CONSUMER_REASONS, INVALID_RECORD, error_text
from shared.deadletters.guard import DeadLetterStore, PollGuard, Refused, Reject
from shared.deadletters.parking import Parking, transient
from shared.events import LEAD_EVENT_TYPES, PAYLOADS, AnyPayload, Envelope, InvalidEvent, decode
from shared.metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_REJECTED, PROJECTION_FRESHNESS
from shared.retry import HANDLER

if TYPE_CHECKING:
    from shared.positions import TopicPositions
    from shared.supervisor import WorkerHealth

log = logging.getLogger(__name__)

ADVISORY_COMMIT_INTERVAL = 1.0  # seconds
# The broker answers a fetch once this much is waiting or this long has passed: a trickle of events (one
# lead a request) is then applied a few at a time, not one transaction (and projector and relay round)
# per event, at the cost of at most this wait per hop; a backlog fills the minimum at once.
FETCH_MIN_BYTES = 64 * 1024
FETCH_MAX_WAIT_MS = 50
SESSION_TIMEOUT_MS = 6000
# How often a consumer looks for parked records someone asked to re-drive (``python -m shared.deadletters retry``).
REDRIVE_INTERVAL = 2.0  # seconds


@dataclass(slots=True)  # not frozen: a frozen dataclass' __init__ costs several times more, per event
class Delivered:
    """One valid event as delivered from the topic."""

    partition: int
    offset: int
    envelope: Envelope
    payload: AnyPayload
    raw: bytes | None = None
    """The record value as read from the topic (None for an event built in memory)."""


def _type_header(record: Any) -> bytes | None:
    for name, value in record.headers or ():
        if name == "ce_type":
            return value
    return None


def tracking_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


# Returns, for each partition, the next offset to read (None: from the beginning).
PositionLoader = Callable[[list[int]], dict[int, int | None]]


class PartitionBatch(NamedTuple):
    """What one poll brought from one partition: the valid events, and the offset after the last record."""

    partition: int
    delivered: list[Delivered]
    next_offset: int


# Applies what one poll brought (one batch per partition, in partition order: the order in which a handler
# that locks position rows takes them) and stores each partition's ``next_offset`` atomically with its
# effects, all partitions in one transaction where it can (what makes a trickle of events cheap); returns
# how many events it applied (0 for batches applied before). Raising writes nothing: a transient error is
# retried, then restarts the consumer; any other error makes the consumer find and park the bad record;
# :class:`Refused` names the records to park.
BatchHandler = Callable[[list[PartitionBatch]], int]


class _SeekToStoredPositions(ConsumerRebalanceListener):
    def __init__(self, consumer: TopicConsumer) -> None:
        self.owner = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Another member owns these now: its lag is no longer ours to report.
        for tp in revoked:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.owner.service, str(tp.partition))
        if self.owner.positions is not None:
            self.owner.positions.forget(tp.partition for tp in revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner.seek_to_stored(assigned)


class TopicConsumer:
    """Reads the topic in batches and hands each partition's batch to a handler (in a thread)."""

    def __init__(
        self,
        *,
        service: str,
        bootstrap: str,
        topic: str,
        group_id: str,
        load_positions: PositionLoader,
        handle_batch: BatchHandler,
        worker: str = "consumer",
        dead_letters: DeadLetterStore | None = None,
        reasons: tuple[str, ...] = CONSUMER_REASONS,
        batch_size: int = 1000,
        poll_timeout_ms: int = 200,
        partitions: list[int] | None = None,
        health: WorkerHealth | None = None,
        types: Collection[str] = LEAD_EVENT_TYPES,
        positions: TopicPositions | None = None,
    ) -> None:
        """``partitions``: read exactly these, without taking part in the group's partition
        assignment (a replay's workers split the topic among themselves up front, so nobody
        waits for a rebalance); None: share the topic with the group's other members.
        ``worker``: the consumer's name in its service (``consumer``, ``instance-<name>``), in its dead
        letters and their counter; ``dead_letters``: where it parks and what it re-drives (every service
        gives one; None, for in-process tools and tests: a record that is not an event is skipped and a
        handler's failure raises); ``reasons``: those it may park for (counted from 0 from the start).
        ``health``: where the consumer reports progress and lag to its supervisor.
        ``types``: the event types this consumer is for (default: every lead event); records of other
        types (the directory's events) are passed over by their ``ce_type`` header, undecoded.
        ``positions``: where it reports how far it applied each partition (for requests that wait on it)."""
        self.types = frozenset(types)
        self._ignored = {name.encode() for name in PAYLOADS if name not in self.types}
        self.service = service
        self.worker = worker
        self.dead_letters = dead_letters
        self.parking = Parking(service=service, worker=worker, bootstrap=bootstrap, topic=topic, reasons=reasons)
        self.guard = PollGuard(
            service=service,
            worker=worker,
            topic=topic,
            handle_batch=handle_batch,
            load_positions=load_positions,
            store=dead_letters,
            parking=self.parking,
            health=health,
        )
        self.health = health
        self.positions = positions
        self.partitions = partitions
        self.topic = topic
        self.load_positions = load_positions
        self.handle_batch = handle_batch
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=batch_size,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            # A member killed outright holds its partitions until its session expires: the broker's smallest
            # allowed session (6 s) lets a restarted replica take them back within the recovery target.
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
        )
        self._stopping = False
        self._pending: asyncio.Task[None] | None = None
        self._polls_in_hand = 0  # polls fetched whose records are not all applied yet
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committed_at = 0.0
        self._started = False
        self._redrive_at = 0.0
        self.applied = 0
        self.redriven = 0

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        positions = await asyncio.to_thread(self.load_positions, [tp.partition for tp in partitions])
        for tp in partitions:
            offset = positions.get(tp.partition)
            if offset is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
            if self.positions is not None:
                self.positions.reached(tp.partition, offset or 0)
        log.info("partitions assigned", extra={"positions": {str(k): v for k, v in positions.items()}})

    async def start(self) -> None:
        """Connect and take partitions (once; :meth:`run` does it if nobody did)."""
        if self._started:
            return
        self._started = True
        await self.consumer.start()
        if self.positions is not None:
            self.positions.attach(self)
        if self.partitions is None:
            self.consumer.subscribe([self.topic], listener=_SeekToStoredPositions(self))
        else:
            assigned = [TopicPartition(self.topic, p) for p in self.partitions]
            self.consumer.assign(assigned)
            await self.seek_to_stored(assigned)

    def stop(self) -> None:
        """Finish the batch in hand, then return from :meth:`run`."""
        self._stopping = True

    async def run(self) -> None:
        """Poll, decode and apply until stopped. Decoding the next batch overlaps with writing the last one;
        writes stay strictly in order (a batch is handed over only after the previous one is stored)."""
        try:
            self.parking.bind(asyncio.get_running_loop())
            await self.start()
            while not self._stopping:
                if time.monotonic() >= self._redrive_at:
                    await self._settle(wait=True)  # re-driven events are applied between batches, never beside one
                    await asyncio.to_thread(self._redrive_requested)
                    self._redrive_at = time.monotonic() + REDRIVE_INTERVAL
                batches = await self.consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
                if not batches:
                    await self._settle(wait=False)
                    if self.health is not None and self._pending is None:
                        self.health.progressed()  # looked, found nothing waiting
                    continue
                self._polls_in_hand += 1
                rejected: list[Reject] = []
                decoded = [
                    PartitionBatch(tp.partition, self._decode(tp, records, rejected), records[-1].offset + 1)
                    for tp, records in sorted(batches.items(), key=lambda item: item[0].partition)
                ]
                await self._settle(wait=True)
                self._pending = asyncio.create_task(self._apply_all(decoded, rejected, batches))
            await self._settle(wait=True)
        finally:
            if self._pending is not None and not self._pending.done():
                self._pending.cancel()
                with contextlib.suppress(BaseException):
                    await self._pending
            if self.positions is not None:
                self.positions.detach(self)
            await self.consumer.stop()
            await self.parking.close()

    async def _settle(self, *, wait: bool) -> None:
        """Wait for the batch being written (or only collect it if done); its failure stops :meth:`run`."""
        if self._pending is not None and (wait or self._pending.done()):
            pending, self._pending = self._pending, None
            await pending

    def _decode(self, tp: TopicPartition, records: list, rejected: list[Reject]) -> list[Delivered]:
        delivered: list[Delivered] = []
        for record in records:
            if self._ignored and _type_header(record) in self._ignored:
                continue
            try:
                envelope, payload = decode(record.value)
            except InvalidEvent as exc:
                # A poison record must not stop the partition: it is parked (with the batch, in order).
                EVENTS_REJECTED.labels(self.service).inc()
                rejected.append(Reject(record, INVALID_RECORD, error_text(exc)))
                continue
            if envelope.type not in self.types:  # a producer that sent no ce_type header
                continue
            delivered.append(Delivered(tp.partition, record.offset, envelope, payload, record.value))
        return delivered

    async def _apply_all(self, decoded: list[PartitionBatch], rejected: list[Reject], records: dict) -> None:
        self.applied += await asyncio.to_thread(self._apply_poll, decoded, rejected, records)
        offsets = {TopicPartition(self.topic, batch.partition): batch.next_offset for batch in decoded}
        if self.positions is not None:
            for batch in decoded:
                self.positions.reached(batch.partition, batch.next_offset)
        delivered = [item for batch in decoded for item in batch.delivered]
        for event_type, count in Counter(item.envelope.type for item in delivered).items():
            EVENTS_CONSUMED.labels(self.service, event_type).inc(count)
        if delivered:
            age = (datetime.now(UTC) - max(item.envelope.time for item in delivered)).total_seconds()
            PROJECTION_FRESHNESS.labels(self.service).set(max(0.0, age))
        self._polls_in_hand -= 1
        await self._report_lag()
        # Kafka's own offsets are advisory (for lag dashboards); PostgreSQL holds the truth, so they
        # are committed at most once a second instead of costing a broker round trip per poll.
        self._uncommitted.update(offsets)
        if time.monotonic() - self._committed_at >= ADVISORY_COMMIT_INTERVAL:
            self._committed_at = time.monotonic()
            offsets, self._uncommitted = self._uncommitted, {}
            try:
                await self.consumer.commit(offsets)
            except Exception as exc:
                log.debug("advisory commit failed", extra={"error": str(exc)})

    def _apply_poll(self, batches: list[PartitionBatch], rejected: list[Reject], records: dict) -> int:
        return self.guard.apply(batches, rejected, records)

    @property
    def parked(self) -> int:
        """Records this consumer parked (recorded in its store)."""
        return self.guard.parked

    def _redrive_requested(self) -> None:
        """Apply the parked records someone asked to re-drive, through the same handler's store, once each."""
        if self.dead_letters is None:
            return
        for entry in self.dead_letters.requested(self.worker):
            try:
                envelope, payload = decode(entry.value)
            except InvalidEvent as exc:
                self.dead_letters.refuse(entry, error_text(exc))
                continue
            delivered = Delivered(entry.partition, entry.offset, envelope, payload, entry.value)
            try:
                done = HANDLER.call(functools.partial(self.dead_letters.redrive, entry, delivered))
            except Refused as refused:
                self.dead_letters.refuse(entry, "; ".join(f"{r}: {why}" for r, why in refused.records.values()))
            except Exception as exc:
                if transient(exc):
                    raise
                self.dead_letters.refuse(entry, error_text(exc))
                log.warning("re-drive failed; parked again", extra={"worker": self.worker, "entry": entry.id, "error": str(exc)})
            else:
                if done:
                    self.redriven += 1
                    log.info("re-drove a parked event", extra={"worker": self.worker, "entry": entry.id})

    async def _report_lag(self) -> None:
        total = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            lag = max(0, highwater - position)
            total += lag
            CONSUMER_LAG.labels(self.service, str(tp.partition)).set(lag)
        if self.health is not None:
            self.health.report_lag(total)
            self.health.progressed()

    # -- what a request waiting on this consumer asks (shared.catchup.PartitionSource) ------------------

    def partition_count(self) -> int | None:
        partitions = self.consumer.partitions_for_topic(self.topic)
        return len(partitions) if partitions else None

    async def end_offset(self, partition: int) -> int:
        """The offset after the partition's last record, asked of the broker (the partition need not be ours)."""
        tp = TopicPartition(self.topic, partition)
        return (await self.consumer.end_offsets([tp]))[tp]

    def stored_positions(self, partitions: list[int]) -> dict[int, int | None]:
        return self.load_positions(partitions)

    async def wait_until_caught_up(self, timeout: float = 30.0) -> None:
        """Wait until every assigned partition has been read to its end (used by tests and replay)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assignment = self.consumer.assignment()
            if assignment and not self._polls_in_hand:
                ends = await self.consumer.end_offsets(list(assignment))
                positions = {tp: await self.consumer.position(tp) for tp in assignment}
                if all(positions[tp] >= ends[tp] for tp in assignment) and not self._polls_in_hand:
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError("consumer did not catch up")
