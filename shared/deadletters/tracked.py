"""Parking and re-driving for an event-sourced consumer (one whose batch handler is
:func:`shared.eventstore.tracked_batch_handler`): a parked record is recorded with the tracking record that
moves past it; a re-driven event is applied to the aggregates with its CloudEvents id and its entry's
resolution, in one transaction (the service's ``dead_letters`` table lives with its event store)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking

from shared.config import ServiceSettings
from shared.consumer import BatchHandler, Delivered, TopicConsumer, tracking_name
from shared.deadletters import DeadLetter, Entry
from shared.events import LEAD_EVENT_TYPES
from shared.eventstore import (
    EventSourcedApplication,
    NotWaiting,
    UnitOfWork,
    tracked_batch_handler,
    tracked_partition_positions,
)
from shared.positions import TopicPositions
from shared.supervisor import WorkerHealth


def apply_redriven(
    app: EventSourcedApplication,
    entry_id: int,
    item: Delivered,
    apply: Callable[[UnitOfWork, Delivered], None],
    *,
    aggregate_ids: Callable[[Delivered], Iterable[UUID]] | None = None,
    attempts: int = 5,
) -> bool:
    """Apply one parked event (re-driven after a fix) and mark its dead letter resolved, in one transaction.

    Exactly once: not applied again if its CloudEvents ``id`` was applied meanwhile (the entry is then
    only resolved); nothing at all (False) if the entry is no longer waiting. Positions do not move: the
    consumer moved past the record when it parked it. A version conflict is retried from fresh state."""
    for attempt in range(attempts):
        fresh = [] if app.recorder.already_processed([item.envelope.id]) else [item]
        unit = UnitOfWork(app)
        if aggregate_ids is not None:
            unit.preload(i for d in fresh for i in aggregate_ids(d))
        for delivered in fresh:
            apply(unit, delivered)
        try:
            app.save(*unit.aggregates, processed_event_ids=[d.envelope.id for d in fresh], resolve_dead_letter=entry_id)
            return True
        except NotWaiting:
            return False
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    return False


class TrackedDeadLetters:
    """The :class:`shared.consumer.DeadLetterStore` of an event-sourced consumer (one whose batch handler
    is :func:`shared.eventstore.tracked_batch_handler`): letters recorded with the tracking record that moves past them,
    re-driven events applied with ``apply`` (the same policy the handler applies)."""

    def __init__(
        self,
        app: EventSourcedApplication,
        topic: str,
        apply: Callable[[UnitOfWork, Delivered], None],
        aggregate_ids: Callable[[Delivered], Iterable[UUID]] | None = None,
    ) -> None:
        self.app = app
        self.topic = topic
        self.apply = apply
        self.aggregate_ids = aggregate_ids
        self.table = app.recorder.dead_letters

    def park(self, letter: DeadLetter, next_offset: int) -> bool:
        tracking = Tracking(tracking_name(self.topic, letter.partition), next_offset)
        try:
            self.app.save_tracked([], [tracking], dead_letters=[letter])
            return True
        except IntegrityError:
            if (self.app.recorder.max_tracking_id(tracking.application_name) or -1) >= next_offset:
                return False  # applied or parked before (a restart, or another consumer of the group)
            raise

    def requested(self, worker: str) -> list[Entry]:
        with self.app.recorder.datastore.get_connection() as conn:
            return self.table.requested(conn, worker)

    def redrive(self, entry: Entry, delivered: Delivered) -> bool:
        return apply_redriven(self.app, entry.id, delivered, self.apply, aggregate_ids=self.aggregate_ids)

    def refuse(self, entry: Entry, error: str) -> None:
        with self.app.recorder.datastore.get_connection() as conn:
            self.table.refuse(conn, entry.id, error)


def tracked_consumer(
    app: EventSourcedApplication,
    *,
    service: str,
    settings: ServiceSettings,
    apply: Callable[[UnitOfWork, Delivered], None],
    aggregate_ids: Callable[[Delivered], Iterable[UUID]] | None = None,
    handle_batch: BatchHandler | None = None,
    positions: TopicPositions | None = None,
    types: Collection[str] = LEAD_EVENT_TYPES,
) -> Callable[[WorkerHealth], TopicConsumer]:
    """How the supervisor builds an event-sourced service's consumer of the topic (afresh on every start):
    positions kept with its event store, ``apply`` run exactly once per event (through ``handle_batch`` when
    the service wraps :func:`shared.eventstore.tracked_batch_handler`), what it cannot apply parked."""
    handle = handle_batch or tracked_batch_handler(app, settings.topic, apply, aggregate_ids)

    def build(health: WorkerHealth) -> TopicConsumer:
        return TopicConsumer(
            service=service,
            bootstrap=settings.kafka_bootstrap,
            topic=settings.topic,
            group_id=settings.consumer_group(service),
            load_positions=tracked_partition_positions(app, settings.topic),
            handle_batch=handle,
            worker="consumer",
            dead_letters=TrackedDeadLetters(app, settings.topic, apply, aggregate_ids),
            batch_size=settings.consumer_batch_size,
            health=health,
            positions=positions,
            types=types,
        )

    return build
