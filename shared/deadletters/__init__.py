"""Dead letters: what a worker could not apply, parked instead of retried forever.

A record from the topic that is not a valid event, or that the service's handler still fails on after
bounded retries, and a stored event a projector cannot apply, is *parked*: a copy goes to the
dead-letter topic ``<topic>.dlq`` (retained forever) with ``dlq-*`` headers saying where it came from
and why, a row goes to the service's own ``dead_letters`` table in the same transaction that moves the
worker's stored position past it, the counter ``leadflow_events_dead_lettered_total`` rises, one error
line is logged, and the worker goes on. ``python -m shared.deadletters`` lists, shows, re-drives and
discards them (``docs/operations.md``, "Dead letters").

This module holds what every parking worker and the CLI share: the letter, the table, the headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection, Cursor, sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

# Why a letter was parked (the ``reason`` label of leadflow_events_dead_lettered_total).
INVALID_RECORD = "invalid-record"  # not JSON, not a CloudEvent, or fails the contract's schema
HANDLER_ERROR = "handler-error"  # valid, but the service's handler raised on it (after retries)
PROJECTION_ERROR = "projection-error"  # a stored event the service's projector could not apply
UNKNOWN_LEAD = "unknown-lead"  # an event for a lead the service never saw captured (analytics)
CONSUMER_REASONS = (INVALID_RECORD, HANDLER_ERROR)
PROJECTOR_REASONS = (PROJECTION_ERROR,)

# Entry states: parked → retry-requested (the CLI) → resolved (re-driven) or back to parked (failed
# again); parked or retry-requested → discarded (the CLI). Only the service's own worker resolves.
PARKED, RETRY_REQUESTED, RESOLVED, DISCARDED = "parked", "retry-requested", "resolved", "discarded"
STATUSES = (PARKED, RETRY_REQUESTED, RESOLVED, DISCARDED)

# An error message can quote the bad input (pydantic does): bounded, and stripped of what text
# columns and Kafka headers cannot carry, so that parking a poison record never fails on it.
MAX_ERROR_CHARS = 2000


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of a topic: ``leadflow.lead-events`` → ``leadflow.lead-events.dlq``."""
    return f"{topic}.dlq"


def printable(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` safe for a text column and a header: NUL shown as ``\\x00``, lone surrogates replaced, bounded."""
    text = text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_text(exc: BaseException) -> str:
    return printable(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class DeadLetter:
    """One record (or stored event) as parked: the original bytes, where they came from, and why."""

    service: str
    worker: str
    topic: str
    """The Kafka topic it was read from, or ``store:<schema>.<events table>`` for a stored event."""
    partition: int
    offset: int
    """The Kafka offset, or the stored event's notification id (then ``partition`` is 0)."""
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    error: str
    attempts: int
    parked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    lead_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None

    def dlq_headers(self) -> list[tuple[str, bytes]]:
        """The original headers, then where it came from and why (the contract's ``dlq-*`` headers)."""
        return [
            *self.headers,
            ("dlq-service", self.service.encode()),
            ("dlq-worker", self.worker.encode()),
            ("dlq-topic", self.topic.encode()),
            ("dlq-partition", str(self.partition).encode()),
            ("dlq-offset", str(self.offset).encode()),
            ("dlq-reason", self.reason.encode()),
            ("dlq-error", self.error.encode()),
            ("dlq-attempts", str(self.attempts).encode()),
            ("dlq-time", self.parked_at.isoformat().replace("+00:00", "Z").encode()),
        ]


def header_text(value: bytes | None) -> str | None:
    return None if value is None else printable(value.decode("utf-8", "replace"), 200)


_DDL = (
    """
CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
    id bigserial PRIMARY KEY,
    parked_at timestamptz NOT NULL,
    service text NOT NULL,
    worker text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    lead_id text,
    event_id text,
    event_type text,
    reason text NOT NULL,
    error text NOT NULL,
    attempts int NOT NULL,
    key bytea,
    value bytea NOT NULL,
    header_keys bytea[] NOT NULL,
    header_values bytea[] NOT NULL,
    status text NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'retry-requested', 'resolved', 'discarded')),
    status_at timestamptz NOT NULL DEFAULT now(),
    redrives int NOT NULL DEFAULT 0,
    last_redrive_error text,
    UNIQUE (worker, topic, partition, "offset")
)""",
    "CREATE INDEX IF NOT EXISTS dead_letters_requested ON {schema}.dead_letters (worker, id) WHERE status = 'retry-requested'",
)
_COLUMNS = (
    'parked_at, service, worker, topic, partition, "offset", lead_id, event_id, event_type, reason, error, attempts,'
    " key, value, header_keys, header_values"
)
# A letter parked twice (a crash after the insert committed cannot happen: the position moves in the
# same transaction) would be a no-op rather than an error, should a caller ever try.
_INSERT = f"INSERT INTO {{schema}}.dead_letters ({_COLUMNS}) VALUES ({', '.join(['%s'] * 16)}) ON CONFLICT DO NOTHING"
_LISTED = "id, parked_at, worker, reason, status, lead_id, event_type, attempts, redrives, left(error, 160) AS error"


@dataclass(frozen=True)
class Entry:
    """A row of ``dead_letters`` as read back (for the CLI and for re-driving)."""

    id: int
    worker: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    status: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> Entry:
        pairs = zip(row["header_keys"], row["header_values"], strict=True)
        headers = tuple((bytes(k).decode("utf-8", "replace"), bytes(v)) for k, v in pairs)
        return cls(
            id=row["id"],
            worker=row["worker"],
            topic=row["topic"],
            partition=row["partition"],
            offset=row["offset"],
            key=None if row["key"] is None else bytes(row["key"]),
            value=bytes(row["value"]),
            headers=headers,
            reason=row["reason"],
            status=row["status"],
        )


class DeadLetterTable:
    """The ``dead_letters`` table of one service's schema: the SQL every parking worker and the CLI use.

    Methods take the caller's connection or cursor, so that an insert or a resolution joins the caller's
    transaction (the one that moves the position, or applies the re-driven event)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.create_statements = [sql.SQL(statement).format(schema=sql.Identifier(schema)) for statement in _DDL]
        self._q = {
            name: sql.SQL(template).format(schema=sql.Identifier(schema))
            for name, template in {
                "insert": _INSERT,
                "resolve": "UPDATE {schema}.dead_letters SET status = 'resolved', status_at = now(), redrives = redrives + 1"
                " WHERE id = %s AND status = 'retry-requested' RETURNING id",
                "refuse": "UPDATE {schema}.dead_letters SET status = 'parked', status_at = now(), redrives = redrives + 1,"
                " last_redrive_error = %s WHERE id = %s AND status = 'retry-requested'",
                "requested": "SELECT * FROM {schema}.dead_letters WHERE worker = %s AND status = 'retry-requested'"
                " ORDER BY id LIMIT %s",
            }.items()
        }

    def create(self, conn: Connection[Any] | Cursor[Any]) -> None:
        for statement in self.create_statements:
            conn.execute(statement)

    def insert(self, cur: Cursor[Any], letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            cur.execute(
                self._q["insert"],
                (
                    letter.parked_at,
                    letter.service,
                    letter.worker,
                    letter.topic,
                    letter.partition,
                    letter.offset,
                    letter.lead_id,
                    letter.event_id,
                    letter.event_type,
                    letter.reason,
                    letter.error,
                    letter.attempts,
                    letter.key,
                    letter.value,
                    [k.encode("utf-8", "replace") for k, _ in letter.headers],
                    [v for _, v in letter.headers],
                ),
            )

    def resolve(self, cur: Cursor[Any], entry_id: int) -> bool:
        """Mark a requested entry resolved, in the caller's transaction; False if it is not (or no longer)
        requested: someone else re-drove or discarded it, and the caller must not apply it."""
        cur.execute(self._q["resolve"], (entry_id,))
        return cur.fetchone() is not None

    def refuse(self, conn: Connection[Any], entry_id: int, error: str) -> None:
        """A re-drive failed again: the entry is parked again, with the new error."""
        conn.execute(self._q["refuse"], (printable(error), entry_id))

    def requested(self, conn: Connection[Any], worker: str, limit: int = 100) -> list[Entry]:
        """The entries of ``worker`` someone asked to re-drive, oldest first."""
        with conn.cursor(row_factory=dict_row) as cur:
            return [Entry.of(row) for row in cur.execute(self._q["requested"], (worker, limit)).fetchall()]

    # --- for the CLI ---------------------------------------------------------------------------------

    def listing(self, conn: Connection[Any], statuses: Sequence[str], limit: int) -> list[dict[str, Any]]:
        query = sql.SQL(f"SELECT {_LISTED} FROM {{}}.dead_letters WHERE status = ANY(%s) ORDER BY id LIMIT %s").format(
            sql.Identifier(self.schema)
        )
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, (list(statuses), limit)).fetchall()

    def row(self, conn: Connection[Any], entry_id: int) -> dict[str, Any] | None:
        query = sql.SQL("SELECT * FROM {}.dead_letters WHERE id = %s").format(sql.Identifier(self.schema))
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, (entry_id,)).fetchone()

    def set_status(self, conn: Connection[Any], ids: Sequence[int] | None, to: str, from_: Sequence[str]) -> list[int]:
        """Move the entries (every one in ``from_`` when ``ids`` is None) to status ``to``; returns the ids moved."""
        where = sql.SQL("status = ANY(%s)") if ids is None else sql.SQL("status = ANY(%s) AND id = ANY(%s)")
        query = sql.SQL("UPDATE {}.dead_letters SET status = %s, status_at = now() WHERE {} RETURNING id").format(
            sql.Identifier(self.schema), where
        )
        params: list[Any] = [to, list(from_)] if ids is None else [to, list(from_), list(ids)]
        return sorted(row[0] for row in conn.execute(query, params).fetchall())

    def statuses(self, conn: Connection[Any], ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        query = sql.SQL("SELECT id, status, last_redrive_error FROM {}.dead_letters WHERE id = ANY(%s)").format(
            sql.Identifier(self.schema)
        )
        return {row[0]: (row[1], row[2]) for row in conn.execute(query, (list(ids),)).fetchall()}


class PooledDeadLetters:
    """The parts of a consumer's dead-letter store (:class:`shared.deadletters.guard.DeadLetterStore`) that
    are the same for every read-model writer reaching its ``dead_letters`` table through a connection pool;
    the writer adds ``park`` and ``redrive``, which join its own positions and effects."""

    pool: ConnectionPool
    dead_letters: DeadLetterTable

    def requested(self, worker: str) -> list[Entry]:
        with self.pool.connection() as conn:
            return self.dead_letters.requested(conn, worker)

    def refuse(self, entry: Entry, error: str) -> None:
        with self.pool.connection() as conn:
            self.dead_letters.refuse(conn, entry.id, error)
