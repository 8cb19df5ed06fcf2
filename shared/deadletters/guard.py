"""The consumer's side of parking: a poll applied so that one bad record never stops its partition.

:class:`PollGuard` is what :class:`shared.consumer.TopicConsumer` hands each poll to, in its worker
thread. The happy path is one call of the handler (with ``shared.retry.HANDLER``'s bounded retries of
transient errors). Records that are not valid events are parked in their places and the rest applied
around them; a handler failure that is not transient is bisected (:func:`shared.deadletters.parking.isolate`)
so that only the records that fail alone are parked; a handler that knows which records it will not
apply raises :class:`Refused`. What is behind the stored position (applied or parked before, read again
after a restart or a rebalance) is neither bisected nor parked twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from shared.deadletters import HANDLER_ERROR, DeadLetter, Entry, error_text, header_text
from shared.deadletters.parking import Parking, isolate, transient
from shared.retry import HANDLER

if TYPE_CHECKING:
    from shared.consumer import Delivered, PartitionBatch
    from shared.supervisor import WorkerHealth

log = logging.getLogger(__name__)


class Refused(Exception):
    """Raised by a batch handler (having written nothing) that knows which records it will not apply, and
    why: the consumer parks exactly these and hands the handler the rest again, without retries."""

    def __init__(self, records: dict[tuple[int, int], tuple[str, str]]) -> None:
        """``records``: ``(partition, offset)`` → ``(reason, error)`` (reason: a dead-letter reason)."""
        super().__init__(f"{len(records)} record(s) refused")
        self.records = records


class DeadLetterStore(Protocol):
    """What a consumer needs from its service to park a record and re-drive one, each in one transaction
    with the service's stored position or effects (the service's ``dead_letters`` table)."""

    def park(self, letter: DeadLetter, next_offset: int) -> bool:
        """Record ``letter`` and move its partition's stored position to ``next_offset``, atomically; False
        (nothing recorded) when the stored position is there already (applied or parked before)."""
        ...

    def requested(self, worker: str) -> list[Entry]:
        """The entries of ``worker`` someone asked to re-drive, oldest first."""
        ...

    def redrive(self, entry: Entry, delivered: Delivered) -> bool:
        """Apply ``delivered`` (not if its CloudEvents id was applied before) and mark ``entry`` resolved,
        atomically; False (nothing applied) when the entry is no longer waiting to be re-driven."""
        ...

    def refuse(self, entry: Entry, error: str) -> None:
        """The re-drive failed: the entry is parked again, with ``error``."""
        ...


class _RefusedInPart(BaseException):
    """A part of a batch, applied alone during bisection, was refused: out of the bisection at once (not an
    ``Exception``, so that neither a retry policy nor a bisection step takes it for a record's failure)."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(str(refused))
        self.refused = refused


class Reject(NamedTuple):
    """A record of a poll to park rather than apply."""

    record: Any  # aiokafka's ConsumerRecord
    reason: str
    error: str


class PollGuard:
    """Applies a consumer's polls through its handler and parks what cannot be applied (worker thread)."""

    def __init__(
        self,
        *,
        service: str,
        worker: str,
        topic: str,
        handle_batch: Callable[[list[PartitionBatch]], int],
        load_positions: Callable[[list[int]], dict[int, int | None]],
        store: DeadLetterStore | None,
        parking: Parking,
        health: WorkerHealth | None = None,
    ) -> None:
        self.service = service
        self.worker = worker
        self.topic = topic
        self.handle_batch = handle_batch
        self.load_positions = load_positions
        self.store = store
        self.parking = parking
        self.health = health
        self._polled: dict = {}
        self.parked = 0

    def apply(self, batches: list[PartitionBatch], rejected: list[Reject], records: dict) -> int:
        """Apply one poll (``rejected``: its records that are not valid events; ``records``: the poll as read)."""
        if self.store is None:  # a consumer that cannot park (in-process tools, tests): as before parking
            for reject in rejected:
                log.warning("skipped invalid record", extra={"offset": reject.record.offset, "error": reject.error})
            return HANDLER.call(lambda: self.handle_batch(batches))
        self._polled = records  # the poll's records, for the key and headers of one to park
        try:
            if rejected:
                return self._apply_around(batches, rejected)
            try:
                return HANDLER.call(lambda: self.handle_batch(batches))
            except Refused as refused:
                return self._apply_around(batches, self._rejects(refused))
            except Exception as exc:
                if transient(exc):
                    raise
                failed: BaseException | None = exc if len(batches) == 1 else None
                return sum(self._apply_partition(batch, failed) for batch in batches)
        finally:
            self._polled = {}

    def _apply_partition(self, batch: PartitionBatch, failed: BaseException | None = None) -> int:
        """One partition's batch, its bad records found by bisection and parked (``failed``: the error the
        batch already raised; None: try it whole first)."""
        if failed is None:
            try:
                return HANDLER.call(lambda: self.handle_batch([batch]))
            except Refused as refused:
                return self._apply_around([batch], self._rejects(refused))
            except Exception as exc:
                if transient(exc):
                    raise
                failed = exc
        # Read again after a restart or a rebalance, a record parked before fails again: what is behind the
        # stored position was applied or parked already, and is neither bisected nor parked twice.
        done = self._stored_position(batch.partition)
        items = [item for item in batch.delivered if item.offset >= done]
        if not items:
            return 0

        def apply(lo: int, hi: int) -> int:
            next_offset = items[hi].offset if hi < len(items) else batch.next_offset
            try:
                return self.handle_batch([batch._replace(delivered=items[lo:hi], next_offset=next_offset)])
            except Refused as refused:
                raise _RefusedInPart(refused) from None

        def park(i: int, error: BaseException, attempts: int) -> None:
            self._park(self._record(batch.partition, items[i].offset), HANDLER_ERROR, error_text(error), attempts)

        try:
            return isolate(len(items), apply, park, failed)
        except _RefusedInPart as signal:
            # What was applied or parked on the way stays so; the rest goes on around what the part refused.
            done = self._stored_position(batch.partition)
            rest = batch._replace(delivered=[item for item in batch.delivered if item.offset >= done])
            rejects = [r for r in self._rejects(signal.refused) if r.record.offset >= done]
            return self._apply_around([rest], rejects)

    def _apply_around(self, batches: list[PartitionBatch], rejected: list[Reject]) -> int:
        """Each partition's batch in order, its rejected records parked in their places."""
        applied = 0
        for batch in batches:
            rejects = sorted((r for r in rejected if r.record.partition == batch.partition), key=lambda r: r.record.offset)
            if not rejects:
                applied += self._apply_partition(batch)
                continue
            refused = {r.record.offset for r in rejects}
            pending = [item for item in batch.delivered if item.offset not in refused]
            for reject in rejects:
                before = [item for item in pending if item.offset < reject.record.offset]
                pending = pending[len(before) :]
                if before:
                    applied += self._apply_partition(batch._replace(delivered=before, next_offset=reject.record.offset))
                self._park(reject.record, reject.reason, reject.error, 1)
            if pending:
                applied += self._apply_partition(batch._replace(delivered=pending))
        return applied

    def _rejects(self, refused: Refused) -> list[Reject]:
        return [Reject(self._record(p, offset), reason, error) for (p, offset), (reason, error) in refused.records.items()]

    def _record(self, partition: int, offset: int) -> Any:
        """The record at ``offset`` in the poll being applied (a valid event's key and headers are not kept)."""
        for tp, polled in self._polled.items():
            if tp.partition == partition:
                for record in polled:
                    if record.offset == offset:
                        return record
        raise LookupError(f"no record at {partition}:{offset} in this poll")

    def _stored_position(self, partition: int) -> int:
        return self.load_positions([partition]).get(partition) or 0

    def _park(self, record: Any, reason: str, error: str, attempts: int) -> None:
        if self._stored_position(record.partition) > record.offset:
            return  # parked (or applied) before: read again after a restart or a rebalance
        headers = tuple((key, bytes(value or b"")) for key, value in record.headers or ())
        found = dict(headers)
        letter = DeadLetter(
            service=self.service,
            worker=self.worker,
            topic=self.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if record.value is not None else b"",
            headers=headers,
            reason=reason,
            error=error,
            attempts=attempts,
            lead_id=header_text(record.key),
            event_id=header_text(found.get("ce_id")),
            event_type=header_text(found.get("ce_type")),
        )
        self.parking.send_blocking(letter)  # acknowledged before the position moves past the record
        assert self.store is not None
        if self.store.park(letter, record.offset + 1):
            self.parking.parked(letter)
            self.parked += 1
        if self.health is not None:
            self.health.progressed()
