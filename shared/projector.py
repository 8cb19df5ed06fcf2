"""What a projector that follows its service's own event store does with a stored event it cannot apply.

A read-model projector (assignment's ownership view, followup's task board) applies batches of the
notification log. When a batch fails with an error that is not transient, the batch is bisected, so
that only a stored event that fails on its own (after bounded retries) is parked: a copy goes to the
dead-letter topic (``dlq-topic`` = ``store:<schema>.<events table>``, ``dlq-partition`` 0,
``dlq-offset`` = its notification id), a row goes to the service's ``dead_letters`` table in the
transaction that moves the projector's position past it, it is counted and logged once, and the
projector goes on. Re-driving one (after a fix) rebuilds the rows of its lead from the lead's stored
events up to the projector's position, so the lead's view is exact whatever came after the parked
event. An outage (a transient error) parks nothing: the projector raises and is restarted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from eventsourcing.persistence import Notification

from shared.config import ServiceSettings
from shared.deadletters import PROJECTION_ERROR, PROJECTOR_REASONS, DeadLetter, error_text
from shared.deadletters.parking import Parking, isolate, transient
from shared.eventstore import EventSourcedApplication
from shared.positions import Positions
from shared.retry import HANDLER
from shared.supervisor import WorkerHealth

P = TypeVar("P")


class StoredEventParking:
    """One projector's parking of stored events (built with the projector, so restarts bring a fresh producer)."""

    def __init__(self, app: EventSourcedApplication, *, service: str, worker: str, bootstrap: str, topic: str) -> None:
        self.app = app
        self.service = service
        self.worker = worker
        self.store = f"store:{app.recorder.datastore.schema}.{app.recorder.events_table_name}"
        self.parking = Parking(service=service, worker=worker, bootstrap=bootstrap, topic=topic, reasons=PROJECTOR_REASONS)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.parking.bind(loop)

    async def close(self) -> None:
        await self.parking.close()

    def apply(
        self,
        notifications: Sequence[Notification],
        apply: Callable[[int, int], int],
        record: Callable[[DeadLetter, Notification], bool],
    ) -> int:
        """``apply(0, len(notifications))``; should it fail (not transiently), the notifications are bisected
        and each one that fails alone is parked: produced to the dead-letter topic, then ``record(letter,
        notification)`` stores the letter and moves the position past the notification, atomically (False:
        the position was past it already). ``apply(lo, hi)`` projects ``notifications[lo:hi]`` with the
        position after them. Runs in the projector's thread."""
        try:
            return HANDLER.call(lambda: apply(0, len(notifications)))
        except Exception as exc:
            if transient(exc):
                raise
            failed = exc

        def park(i: int, error: BaseException, attempts: int) -> None:
            letter = self.letter(notifications[i], error_text(error), attempts)
            self.parking.send_blocking(letter)  # acknowledged before the position moves past it
            if record(letter, notifications[i]):
                self.parking.parked(letter)

        return isolate(len(notifications), apply, park, failed)

    def letter(self, notification: Notification, error: str, attempts: int) -> DeadLetter:
        """A stored event as a dead letter: its recorded state as the value, its identity in headers."""
        headers = (
            ("es-topic", notification.topic.encode()),
            ("es-originator-id", str(notification.originator_id).encode()),
            ("es-originator-version", str(notification.originator_version).encode()),
            ("es-notification-id", str(notification.id).encode()),
        )
        return DeadLetter(
            service=self.service,
            worker=self.worker,
            topic=self.store,
            partition=0,
            offset=notification.id,
            key=str(notification.originator_id).encode(),
            value=bytes(notification.state),
            headers=headers,
            reason=PROJECTION_ERROR,
            error=error,
            attempts=attempts,
            lead_id=str(notification.originator_id),
            event_type=notification.topic.rpartition(":")[2] or notification.topic,
        )

    def lead_notifications(self, lead_id: str, up_to: int) -> list[Notification]:
        """The stored events of the lead's aggregate up to the position ``up_to``, in order (for a re-drive)."""
        return self.app.recorder.aggregate_notifications(lead_id, up_to)


def projector_worker(
    make: Callable[..., P],
    app: EventSourcedApplication,
    view: object,
    *,
    service: str,
    worker: str,
    settings: ServiceSettings,
    positions: Positions,
    current: list[P],
) -> Callable[[WorkerHealth], P]:
    """How the supervisor builds a projector of the service's own event store into ``view`` (afresh on every
    start, with parking of its own); ``current`` holds the one running, for the service's nudges."""

    def build(health: WorkerHealth) -> P:
        parking = StoredEventParking(
            app, service=service, worker=worker, bootstrap=settings.kafka_bootstrap, topic=settings.topic
        )
        projector = make(
            app,
            view,
            poll_interval=settings.relay_poll_interval.total_seconds(),
            health=health,
            parking=parking,
            positions=positions,
        )
        current[:] = [projector]
        return projector

    return build
