"""The event-sourced application base every command-side service builds on (eventsourcing on PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, BaseAggregate
from eventsourcing.persistence import IntegrityError, Notification, ProcessRecorder, Recording, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from eventsourcing.utils import Environment, get_topic
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from shared.config import ServiceSettings
from shared.consumer import Delivered, PartitionBatch, tracking_name
from shared.deadletters import DeadLetterTable

# Seconds a request waits for a database connection before it is answered 503 (outages fail fast; a request
# may wait twice, a read and then a write, and is still answered within ~2 s).
POOL_TIMEOUT = 1


def read_model_pool(database_url: str, max_size: int, **kwargs: Any) -> ConnectionPool:
    """A connection pool for a service's own tables, with the event store's outage behaviour: connections
    checked before use, at most ``POOL_TIMEOUT`` s of waiting for one. Opened by the caller.

    Sessions are in UTC whatever the server's or database's ``timezone``: every LeadFlow time is UTC, and
    a valid time at the end of the calendar (``9999-12-31T23:59:59Z``) read back in a zone east of UTC lies
    past the year 9999, which psycopg cannot load (a worker reading it would crash)."""
    return ConnectionPool(
        database_url,
        min_size=1,
        max_size=max_size,
        timeout=POOL_TIMEOUT,
        check=ConnectionPool.check_connection,
        kwargs={"connect_timeout": POOL_TIMEOUT, "options": "-c TimeZone=UTC", **kwargs},
        open=False,
    )


def advisory_key(name: str) -> int:
    """A stable 63-bit PostgreSQL advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


def _lock_creation(conn: psycopg.Connection, schema: str) -> None:
    """Serialise creating a schema's objects across processes (released when ``conn`` closes).

    Replicas of a service, and intake's API and relay processes, start together, and PostgreSQL's
    ``CREATE ... IF NOT EXISTS`` is not safe against a concurrent one (a unique violation in its catalog)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (advisory_key(f"leadflow-create:{schema}"),))


def ensure_schema(settings: ServiceSettings, schema: str) -> None:
    """Each service owns one schema of the database; create it if it is missing."""
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        _lock_creation(conn, schema)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def eventsourcing_env(settings: ServiceSettings, schema: str, **overrides: str) -> dict[str, str]:
    """eventsourcing's settings built from ours (never read from the raw environment)."""
    pg = settings.postgres_params()
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": pg["dbname"],
        "POSTGRES_HOST": pg["host"],
        "POSTGRES_PORT": pg["port"],
        "POSTGRES_USER": pg["user"],
        "POSTGRES_PASSWORD": pg["password"],
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(settings.db_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.db_pool_size),
        "POSTGRES_LOCK_TIMEOUT": "10",
        # While PostgreSQL is down a request waits at most this long for a connection, then answers 503;
        # a pooled connection is checked before use, so the first requests after recovery succeed.
        "POSTGRES_CONNECT_TIMEOUT": str(POOL_TIMEOUT),
        "POSTGRES_PRE_PING": "y",
        "CREATE_TABLE": "y",
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size),
        "PROCESS_RECORDER_TOPIC": get_topic(DedupingProcessRecorder),
        # Deliberately NOT POSTGRES_ENABLE_DB_FUNCTIONS: it skips the table lock that keeps
        # notification ids in commit order, and the outbox relay would then miss events.
    }
    env.update(overrides)
    return env


class NotWaiting(Exception):
    """A dead letter to resolve is no longer waiting to be re-driven (resolved or discarded meanwhile)."""


class DedupingProcessRecorder(PostgresProcessRecorder):
    """A process recorder that also remembers the ids of the upstream events it applied.

    ``save(..., tracking=t, processed_event_ids=[...])`` writes the ids in the same transaction as
    the events and the tracking record, so an upstream event republished under the same CloudEvents
    ``id`` at a later offset is recognised and ignored (:meth:`already_processed`). The service's
    ``dead_letters`` table lives here too: ``dead_letters=[...]`` records parked records with the tracking
    record that moves past them, ``resolve_dead_letter=id`` marks a re-driven one resolved with its effects.
    """

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.processed_table = self.events_table_name.removesuffix("_events") + "_processed_events"
        self.check_identifier_length(self.processed_table)
        self.sql_create_statements.append(
            sql.SQL("CREATE TABLE IF NOT EXISTS {0}.{1} (event_id text PRIMARY KEY)").format(
                sql.Identifier(self.datastore.schema), sql.Identifier(self.processed_table)
            )
        )
        self.dead_letters = DeadLetterTable(self.datastore.schema)
        self.sql_create_statements.extend(self.dead_letters.create_statements)
        # One statement for a whole batch of ids, the array sent in binary.
        self._insert_processed = sql.SQL(
            "INSERT INTO {0}.{1} (event_id) SELECT unnest(%b::text[]) ON CONFLICT DO NOTHING"
        ).format(sql.Identifier(self.datastore.schema), sql.Identifier(self.processed_table))
        self._select_processed = sql.SQL("SELECT event_id FROM {0}.{1} WHERE event_id = ANY(%b::text[])").format(
            sql.Identifier(self.datastore.schema), sql.Identifier(self.processed_table)
        )
        # One array per column, sent in binary (%b): eventsourcing sends one array of a composite type,
        # which psycopg can only dump as text, escaping every byte of every state in Python (~50 µs per
        # event, the largest cost of a 1,000-lead save). Same rows, same order, same RETURNING.
        self._insert_event_columns = sql.SQL(
            "INSERT INTO {0}.{1} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::{2}[], %b::bigint[], %b::text[], %b::bytea[]) RETURNING notification_id"
        ).format(
            sql.Identifier(self.datastore.schema),
            sql.Identifier(self.events_table_name),
            sql.SQL(self.datastore.originator_id_type),
        )

    # eventsourcing retries each of these up to 10 times on a connection error, each try waiting up to the pool
    # timeout: while PostgreSQL is down that held a request (or a worker) for many seconds. LeadFlow answers such
    # a request 503 at once, and its workers restart with their own back-off (shared.retry): the store's calls
    # are made without eventsourcing's retries.
    insert_events = PostgresProcessRecorder.insert_events.__wrapped__  # type: ignore[attr-defined]
    select_events = PostgresProcessRecorder.select_events.__wrapped__  # type: ignore[attr-defined]
    select_notifications = PostgresProcessRecorder.select_notifications.__wrapped__  # type: ignore[attr-defined]
    max_notification_id = PostgresProcessRecorder.max_notification_id.__wrapped__  # type: ignore[attr-defined]
    insert_tracking = PostgresProcessRecorder.insert_tracking.__wrapped__  # type: ignore[attr-defined]
    max_tracking_id = PostgresProcessRecorder.max_tracking_id.__wrapped__  # type: ignore[attr-defined]
    has_tracking_id = PostgresProcessRecorder.has_tracking_id.__wrapped__  # type: ignore[attr-defined]

    def _insert_stored_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        """As eventsourcing's (table lock, NOTIFY, insert returning the notification ids), with column arrays."""
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_event_columns,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )

    def _insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        # eventsourcing records one ``tracking`` position; a batch spanning partitions brings the others.
        for tracking in kwargs.get("more_tracking", ()):
            self._insert_tracking(curs, tracking)
        super()._insert_events(curs, stored_events, **kwargs)
        event_ids = kwargs.get("processed_event_ids")
        if event_ids:
            # A cursor of its own: the tracking insert above reads its RETURNING row from ``curs``,
            # and in pipeline mode a further statement on the same cursor would take that result away.
            with curs.connection.cursor() as ids_cursor:
                ids_cursor.execute(self._insert_processed, (list(event_ids),))
        letters = kwargs.get("dead_letters")
        if letters:
            with curs.connection.cursor() as letters_cursor:
                self.dead_letters.insert(letters_cursor, letters)
        resolved = kwargs.get("resolve_dead_letter")
        if resolved is not None:
            with curs.connection.cursor() as resolve_cursor:
                if not self.dead_letters.resolve(resolve_cursor, resolved):
                    raise NotWaiting(resolved)  # rolls the whole save back: applied by someone else, or discarded

    def existing_originators(self, originator_ids: list[UUID]) -> set[UUID]:
        """Which of these aggregates have any events (one query for a whole batch of look-ups)."""
        if not originator_ids:
            return set()
        statement = sql.SQL("SELECT DISTINCT originator_id FROM {0}.{1} WHERE originator_id = ANY(%b::uuid[])").format(
            sql.Identifier(self.datastore.schema), sql.Identifier(self.events_table_name)
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (originator_ids,))
            return {row["originator_id"] for row in curs.fetchall()}

    def aggregate_notifications(self, originator_id: UUID | str, up_to: int) -> list[Notification]:
        """One aggregate's recorded events with their positions in the log, up to position ``up_to``."""
        statement = sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {0}.{1}"
            " WHERE originator_id = %s AND notification_id <= %s ORDER BY notification_id"
        ).format(sql.Identifier(self.datastore.schema), sql.Identifier(self.events_table_name))
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (UUID(str(originator_id)), up_to))
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def already_processed(self, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_processed, (event_ids,))
            return {row["event_id"] for row in curs.fetchall()}


def collect(processing: ProcessingEvent[UUID], objs: Iterable[Any], **kwargs: Any) -> None:
    """``processing.collect_events(*objs, **kwargs)``, with a plain class check for aggregates first.

    eventsourcing tells events from aggregates with ``isinstance`` against runtime-checkable Protocols,
    which on Python 3.11 re-reads the Protocol's attributes on every call: ~50 µs per aggregate, a tenth
    of what capturing a lead costs. Same events in the same order; anything else takes eventsourcing's path.
    """
    for obj in objs:
        if isinstance(obj, BaseAggregate):
            processing.events.extend(obj.collect_events())
            processing.aggregates[obj.id] = obj
        else:
            processing.collect_events(obj)
    processing.saved_kwargs.update(kwargs)


class EventSourcedApplication(Application[UUID]):
    """An eventsourcing application whose recorder also stores tracking positions.

    The tracking table holds, atomically with the events they caused, how far the service has
    applied each ``topic:partition`` it consumes, and how far its relay has published.
    """

    recorder: DedupingProcessRecorder

    def construct_env(self, name: str, env: Any = None) -> Environment:
        """Only the settings built from ours (:func:`eventsourcing_env`): eventsourcing would also read the
        process environment, where a stray ``<NAME>_PERSISTENCE_MODULE`` silently swaps the event store."""
        settings = dict(type(self).env)
        if type(self).is_snapshotting_enabled or type(self).snapshotting_intervals:
            settings["IS_SNAPSHOTTING_ENABLED"] = "y"
        settings.update(env or {})
        return Environment(name, settings)

    @property
    def conninfo(self) -> str:
        """How to open a connection of one's own to the application's database."""
        return make_conninfo(
            host=self.env.get("POSTGRES_HOST"),
            port=self.env.get("POSTGRES_PORT"),
            dbname=self.env.get("POSTGRES_DBNAME"),
            user=self.env.get("POSTGRES_USER"),
            password=self.env.get("POSTGRES_PASSWORD"),
            connect_timeout=10,
        )

    def construct_recorder(self) -> ProcessRecorder:
        if self.env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
            return self.factory.process_recorder()  # domain tests on eventsourcing's in-memory recorder
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            _lock_creation(conn, self.env.get("POSTGRES_SCHEMA") or "public")
            return self.factory.process_recorder()

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """As ``Application.save``, without its per-object Protocol checks for aggregates (see :func:`collect`)."""
        processing = ProcessingEvent[UUID]()
        collect(processing, objs, **kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        self.notify(processing.events)  # eventsourcing's deprecated hook, kept as Application.save calls it
        return recordings

    def get_or_none(self, aggregate_id: UUID) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def tracked_position(self, name: str) -> int | None:
        return self.recorder.max_tracking_id(name)

    def save_tracked(self, aggregates: Iterable[Aggregate], trackings: Sequence[Tracking], **kwargs: Any) -> None:
        """Save the aggregates' new events and the tracking records in one transaction (IntegrityError, and
        nothing saved, if a tracking record is not past the one stored under its name)."""
        # Every writer locks the position rows in the same order: the others by name, then the first by name.
        first, *more = sorted(trackings, key=lambda t: t.application_name)
        processing = ProcessingEvent[UUID](tracking=first)
        collect(processing, aggregates, more_tracking=more, **kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)


class UnitOfWork:
    """Aggregates touched while applying one batch of upstream events, saved in one transaction."""

    def __init__(self, app: EventSourcedApplication) -> None:
        self.app = app
        self._aggregates: dict[UUID, Aggregate] = {}
        self._absent: set[UUID] = set()

    def preload(self, aggregate_ids: Iterable[UUID]) -> None:
        """Learn in one query which of these aggregates do not exist yet, so :meth:`get` need not ask one by one."""
        unknown = [i for i in set(aggregate_ids) if i not in self._aggregates and i not in self._absent]
        if unknown:
            existing = self.app.recorder.existing_originators(unknown)
            self._absent.update(i for i in unknown if i not in existing)

    def get(self, aggregate_id: UUID) -> Any:
        if aggregate_id in self._absent:
            return None
        if aggregate_id not in self._aggregates:
            aggregate = self.app.get_or_none(aggregate_id)
            if aggregate is None:
                return None
            self._aggregates[aggregate_id] = aggregate
        return self._aggregates[aggregate_id]

    def add(self, aggregate: Aggregate) -> None:
        self._absent.discard(aggregate.id)
        self._aggregates[aggregate.id] = aggregate

    @property
    def aggregates(self) -> Iterable[Aggregate]:
        return self._aggregates.values()


class PartlyApplied(Exception):
    """Some, not all, of a batch's partitions were applied before (another consumer had them meanwhile)."""


def apply_tracked_batch(
    app: EventSourcedApplication,
    trackings: Sequence[Tracking],
    delivered: Sequence[Delivered],
    apply: Callable[[UnitOfWork, Delivered], None],
    *,
    aggregate_ids: Callable[[Delivered], Iterable[UUID]] | None = None,
    attempts: int = 5,
) -> int:
    """Apply a batch of upstream events and record the positions in the same transaction.

    Each event not applied before (by CloudEvents ``id``) goes through ``apply`` with a
    :class:`UnitOfWork` that is fresh on every attempt; a version conflict with a concurrent
    command is retried from fresh state. Returns how many events this call applied: 0 when the
    positions were already recorded (the batch had been applied before); raises :class:`PartlyApplied`
    (nothing recorded) when only some were. Exactly-once effect.
    ``aggregate_ids`` (optional) names the aggregates an event touches, so that a batch of mostly new
    leads costs one existence query instead of one per lead.
    """
    for attempt in range(attempts):
        seen = app.recorder.already_processed([d.envelope.id for d in delivered])
        fresh: list[Delivered] = []
        for item in delivered:
            if item.envelope.id not in seen:
                seen.add(item.envelope.id)
                fresh.append(item)
        unit = UnitOfWork(app)
        if aggregate_ids is not None:
            unit.preload(i for item in fresh for i in aggregate_ids(item))
        for item in fresh:
            apply(unit, item)
        try:
            app.save_tracked(unit.aggregates, trackings, processed_event_ids=[d.envelope.id for d in fresh])
            return len(fresh)
        except IntegrityError:
            # Either positions were recorded before (the tracking insert refuses to go back or stand
            # still), or a concurrent command moved an aggregate on (try again; the repository
            # fast-forwards on reload).
            recorded = [(app.recorder.max_tracking_id(t.application_name) or -1) >= t.notification_id for t in trackings]
            if all(recorded):
                return 0
            if any(recorded):
                raise PartlyApplied from None
            if attempt == attempts - 1:
                raise
    return 0


def tracked_partition_positions(app: EventSourcedApplication, topic: str) -> Callable[[list[int]], dict[int, int | None]]:
    """A position loader for :class:`shared.consumer.TopicConsumer` reading the app's tracking records."""

    def load(partitions: list[int]) -> dict[int, int | None]:
        return {p: app.recorder.max_tracking_id(tracking_name(topic, p)) for p in partitions}

    return load


def tracked_batch_handler(
    app: EventSourcedApplication,
    topic: str,
    apply: Callable[[UnitOfWork, Delivered], None],
    aggregate_ids: Callable[[Delivered], Iterable[UUID]] | None = None,
) -> Callable[[list[PartitionBatch]], int]:
    """A batch handler for :class:`shared.consumer.TopicConsumer` that applies events to aggregates
    exactly once (see :func:`apply_tracked_batch`): a poll's partitions in one transaction, or each
    in its own should some of them have been applied meanwhile (a rebalance handed them on and back)."""

    def apply_batches(batches: list[PartitionBatch]) -> int:
        trackings = [Tracking(tracking_name(topic, batch.partition), batch.next_offset) for batch in batches]
        delivered = [item for batch in batches for item in batch.delivered]
        return apply_tracked_batch(app, trackings, delivered, apply, aggregate_ids=aggregate_ids)

    def handle(batches: list[PartitionBatch]) -> int:
        try:
            return apply_batches(batches)
        except PartlyApplied:
            return sum(apply_batches([batch]) for batch in batches)

    return handle
