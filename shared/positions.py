"""How far a service's workers have applied what they follow, for requests that wait on them (shared.catchup).

- :func:`partition_of`: the partition of a lead, as the relays' producers chose it (Kafka's default
  partitioner on the key: murmur2 of the lead id's bytes).
- :class:`Positions`: how far a worker has applied what it follows, per partition (a consumer) or in the
  service's own notification log (a projector, partition :data:`LOG`); awaited on the event loop.
- :class:`TopicPositions`: a consumer's positions plus what waiting on a lead needs of the consumer
  (partition count, end offsets, positions stored by another replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

LOG = 0
"""The one "partition" of a service's own notification log (projectors report their position under it)."""

# Positions of a partition another replica consumes are read from the database this often while waiting.
STORED_POLL = 0.05


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed by ``key`` (Java's
    ``Utils.toPositive(Utils.murmur2(bytes)) % partitions``; aiokafka's ``DefaultPartitioner``)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class Positions:
    """How far a worker has applied what it follows (the next offset per partition, or the last notification
    id of a log), never moving back; :meth:`changed` wakes on any move. Use it on one event loop."""

    def __init__(self) -> None:
        self._at: dict[int, int] = {}
        self._changed: asyncio.Event | None = None

    def reached(self, partition: int, position: int) -> None:
        if position > self._at.get(partition, -1):
            self._at[partition] = position
            self._wake()

    def forget(self, partitions: Iterable[int] | None = None) -> None:
        """This worker no longer applies these partitions (all when None): another one may, further."""
        for partition in list(self._at) if partitions is None else partitions:
            self._at.pop(partition, None)
        self._wake()

    def position(self, partition: int = LOG) -> int | None:
        return self._at.get(partition)

    async def changed(self, partition: int | None, timeout: float) -> None:
        """Return when a position moved, or after ``timeout`` seconds."""
        if timeout <= 0:
            return
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


class PartitionSource(Protocol):
    """What :class:`TopicPositions` needs of the consumer currently running (``shared.consumer.TopicConsumer``)."""

    def partition_count(self) -> int | None: ...

    async def end_offset(self, partition: int) -> int: ...

    def stored_positions(self, partitions: list[int]) -> dict[int, int | None]:
        """The positions stored with the effects (blocking: a database read)."""
        ...


class TopicPositions(Positions):
    """A consumer's applied positions. It outlives the consumers the supervisor builds: each one attaches
    itself while it runs. Partitions this process does not consume are answered from the stored positions
    (another replica's), which may trail what it applied: waiting on them can only take longer, never end early."""

    def __init__(self) -> None:
        super().__init__()
        self._source: PartitionSource | None = None

    def attach(self, source: PartitionSource) -> None:
        self._source = source

    def detach(self, source: PartitionSource) -> None:
        if self._source is source:
            self._source = None
            self.forget()

    def partition_of(self, key: str) -> int | None:
        count = self._source.partition_count() if self._source is not None else None
        return partition_of(key, count) if count else None

    async def end_offset(self, partition: int) -> int | None:
        source = self._source
        if source is None:
            return None
        try:
            return await source.end_offset(partition)
        except Exception as exc:  # the broker may be what is down: then nothing can be known past what we have
            log.debug("no end offset", extra={"partition": partition, "error": repr(exc)})
            return None

    async def applied(self, partition: int) -> int | None:
        local = self.position(partition)
        if local is not None or self._source is None:
            return local
        source = self._source
        try:
            stored = await asyncio.to_thread(source.stored_positions, [partition])
        except Exception as exc:
            log.debug("no stored position", extra={"partition": partition, "error": repr(exc)})
            return None
        return stored.get(partition) or 0

    async def changed(self, partition: int | None, timeout: float) -> None:
        # Moves of a partition read elsewhere (or while no consumer runs) wake nobody: look again soon.
        if partition is None or self.position(partition) is None:
            timeout = min(timeout, STORED_POLL)
        await super().changed(partition, timeout)
