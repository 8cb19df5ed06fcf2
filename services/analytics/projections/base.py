"""What a projection is: its tables (DDL) and a batch apply function, over :class:`Fact` s.

Every instance of a projection lives in a schema of its own; SQL is written with a ``{schema}``
placeholder and composed with :func:`in_schema`, so the same module builds the serving tables and
a fresh set for a replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import Cursor, sql

from shared.consumer import Delivered
from shared.events import Payload, encode


@dataclass(slots=True)  # not frozen: a frozen dataclass' __init__ costs several times more, per event
class Fact:
    """One event as a projection sees it: where it sits on the topic, what it is, when it happened."""

    lead_id: str
    partition: int
    offset: int
    event_id: str
    type: str
    time: datetime
    payload: Payload
    version: int
    record: str
    """The whole CloudEvent as published (JSON text), kept verbatim where a projection stores events."""

    @classmethod
    def of(cls, delivered: Delivered) -> Fact:
        envelope = delivered.envelope
        return cls(
            lead_id=delivered.payload.lead_id,
            partition=delivered.partition,
            offset=delivered.offset,
            event_id=envelope.id,
            type=envelope.type,
            time=envelope.time,
            payload=delivered.payload,
            version=envelope.schemaversion,
            record=(delivered.raw or encode(envelope)).decode(),
        )


# Applies a batch of new facts (in topic order, one partition) to the projection's tables in ``schema``.
Apply = Callable[[Cursor, str, Sequence[Fact]], None]


@dataclass(frozen=True)
class Projection:
    """A read model: ``tables`` are created by ``ddl`` and exposed as views of the same names when serving."""

    name: str
    description: str
    tables: tuple[str, ...]
    ddl: tuple[str, ...]
    apply: Apply


def array_literal(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of ``values`` (None is NULL; others by ``str``, datetimes ISO 8601),
    passed as one text parameter and cast in SQL (``%s::timestamptz[]``): psycopg's list adaptation
    costs several times more per element, and batches of thousands run through here."""
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
        else:
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            parts.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def in_schema(template: str, schema: str) -> sql.Composed:
    """``template`` with ``{schema}`` replaced by the quoted schema name."""
    return sql.SQL(template).format(schema=sql.Identifier(schema))
