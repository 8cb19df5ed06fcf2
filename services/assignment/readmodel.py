"""The ownership view in PostgreSQL (schema ``assignment``): the public pool, each rep's leads, and the
deadlines index the scheduler reads. Written only by the projector; read by the queries."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from services.assignment.projections import RowChange, merged
from shared.deadletters import DeadLetter, DeadLetterTable, Entry

PROJECTION = "ownership_view"
COLUMNS = (
    "lead_id, region, industry, grade, source, captured_at, stage, closed, owner, how, claimed_at, "
    "protected_until, last_contact_at, due_at, due_reason, released_at"
)
POOL_FILTERS = ("region", "industry", "grade", "source")
# The columns the projector writes, with their types (the element type of each column's array parameter).
WRITTEN = {
    "lead_id": "text",
    "region": "text",
    "industry": "text",
    "grade": "text",
    "source": "text",
    "captured_at": "timestamptz",
    "stage": "text",
    "owner": "text",
    "how": "text",
    "claimed_at": "timestamptz",
    "protected_until": "timestamptz",
    "last_contact_at": "timestamptz",
    "due_at": "timestamptz",
    "due_reason": "text",
    "released_at": "timestamptz",
}

DDL = """
CREATE TABLE IF NOT EXISTS {schema}.ownership_view (
    lead_id text PRIMARY KEY,
    region text, industry text, grade text NOT NULL, source text NOT NULL,
    captured_at timestamptz NOT NULL,
    stage text NOT NULL,
    closed boolean GENERATED ALWAYS AS (stage IN ('won', 'lost')) STORED,
    owner text, how text, claimed_at timestamptz, protected_until timestamptz,
    last_contact_at timestamptz, due_at timestamptz, due_reason text, released_at timestamptz
);
CREATE INDEX IF NOT EXISTS ownership_view_pool ON {schema}.ownership_view (captured_at DESC, lead_id DESC)
    WHERE owner IS NULL AND NOT closed;
CREATE INDEX IF NOT EXISTS ownership_view_pool_region ON {schema}.ownership_view (region, captured_at DESC, lead_id DESC)
    WHERE owner IS NULL AND NOT closed;
CREATE INDEX IF NOT EXISTS ownership_view_pool_industry ON {schema}.ownership_view (industry, captured_at DESC, lead_id DESC)
    WHERE owner IS NULL AND NOT closed;
CREATE INDEX IF NOT EXISTS ownership_view_pool_grade ON {schema}.ownership_view (grade, captured_at DESC, lead_id DESC)
    WHERE owner IS NULL AND NOT closed;
CREATE INDEX IF NOT EXISTS ownership_view_pool_source ON {schema}.ownership_view (source, captured_at DESC, lead_id DESC)
    WHERE owner IS NULL AND NOT closed;
CREATE INDEX IF NOT EXISTS ownership_view_owner ON {schema}.ownership_view (owner, claimed_at DESC, lead_id DESC)
    WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS ownership_view_due ON {schema}.ownership_view (due_at, lead_id) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.projection_positions (name text PRIMARY KEY, position bigint NOT NULL);
"""


def column_arrays(names: tuple[str, ...], changes: list[RowChange]) -> list[list[Any]] | None:
    """The changes' values as one list per column (``lead_id`` first, then ``names``), to be sent as
    arrays and written by one statement. None when a list would hold both timezone-aware and naive
    datetimes: one array has one element type, whereas a statement per row converts each value by
    its own (a naive one in the session's time zone)."""
    columns = [[change.lead_id for change in changes]]
    for name in names:
        values = [change.values[name] for change in changes]
        if WRITTEN[name] == "timestamptz" and not _one_datetime_kind(values):
            return None
        columns.append(values)
    return columns


def _one_datetime_kind(values: list[Any]) -> bool:
    kinds = {value.tzinfo is not None and value.utcoffset() is not None for value in values if value is not None}
    return len(kinds) <= 1


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(moment: datetime, lead_id: str) -> str:
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{lead_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, lead_id = text.split("|", 1)
        return datetime.fromisoformat(moment), lead_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("not a cursor this service gave out") from exc


class ReadModel:
    def __init__(self, pool: ConnectionPool, schema: str) -> None:
        self.pool = pool
        self.schema = sql.Identifier(schema)
        self.table = sql.SQL("{}.ownership_view").format(self.schema)
        self.positions = sql.SQL("{}.projection_positions").format(self.schema)
        self.dead_letters = DeadLetterTable(schema)

    def create_tables(self) -> None:
        with self.pool.connection() as conn:
            conn.execute(sql.SQL(DDL).format(schema=self.schema))
            self.dead_letters.create(conn)  # the event store creates it too; whichever comes first

    # --- written by the projector --------------------------------------------------------------

    def position(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(
                sql.SQL("SELECT position FROM {} WHERE name = %s").format(self.positions), (PROJECTION,)
            ).fetchone()
        return row[0] if row else 0

    def apply(self, changes: list[RowChange], after: int, position: int) -> bool:
        """Apply ``changes`` and move the position from ``after`` to ``position``, atomically; False
        (nothing written) when the stored position is no longer ``after``."""
        with self.pool.connection() as conn, conn.transaction():
            if self._lock_position(conn) != after:
                return False
            self._write(conn, changes)
            self._move_to(conn, position)
        return True

    def park(self, letter: DeadLetter, after: int, position: int) -> bool:
        """Record a parked stored event and move the position from ``after`` past it (``position``), atomically."""
        with self.pool.connection() as conn, conn.transaction():
            if self._lock_position(conn) != after:
                return False
            with conn.cursor() as cur:
                self.dead_letters.insert(cur, [letter])
            self._move_to(conn, position)
        return True

    def rebuild(self, lead_id: str, changes: list[RowChange], up_to: int, entry_id: int) -> bool:
        """Replace the lead's row by ``changes`` (the merged change of all its events up to position ``up_to``)
        and resolve the re-driven entry, atomically; False (nothing written) when the position moved on
        meanwhile (the next look tries again) or the entry is no longer waiting."""
        with self.pool.connection() as conn, conn.transaction():
            if self._lock_position(conn) != up_to:
                return False
            with conn.cursor() as cur:
                if not self.dead_letters.resolve(cur, entry_id):
                    return False
            conn.execute(sql.SQL("DELETE FROM {} WHERE lead_id = %s").format(self.table), (lead_id,))
            self._write(conn, changes)
        return True

    def requested(self, worker: str) -> list[Entry]:
        with self.pool.connection() as conn:
            return self.dead_letters.requested(conn, worker)

    def refuse(self, entry: Entry, error: str) -> None:
        with self.pool.connection() as conn:
            self.dead_letters.refuse(conn, entry.id, error)

    def _lock_position(self, conn: Any) -> int | None:
        conn.execute(
            sql.SQL("INSERT INTO {} (name, position) VALUES (%s, 0) ON CONFLICT DO NOTHING").format(self.positions),
            (PROJECTION,),
        )
        stored = conn.execute(
            sql.SQL("SELECT position FROM {} WHERE name = %s FOR UPDATE").format(self.positions), (PROJECTION,)
        ).fetchone()
        return None if stored is None else stored[0]

    def _move_to(self, conn: Any, position: int) -> None:
        conn.execute(sql.SQL("UPDATE {} SET position = %s WHERE name = %s").format(self.positions), (position, PROJECTION))

    def _write(self, conn: Any, changes: list[RowChange]) -> None:
        groups: dict[tuple[bool, tuple[str, ...], tuple[str, ...]], list[RowChange]] = {}
        for change in merged(changes):  # leads are independent: each group is one statement
            groups.setdefault((change.insert, tuple(change.values), change.then_set), []).append(change)
        with conn.cursor() as cur:
            for (insert, names, then_set), group in groups.items():
                columns = column_arrays(names, group)
                if columns is not None:
                    cur.execute(self._statement(insert, names, then_set, arrays=True), columns)
                else:
                    params = [{**change.values, "lead_id": change.lead_id} for change in group]
                    cur.executemany(self._statement(insert, names, then_set), params)

    def _statement(
        self, insert: bool, names: tuple[str, ...], then_set: tuple[str, ...], *, arrays: bool = False
    ) -> sql.Composed:
        """The statement of one group of changes: one row per execution (named parameters), or with
        ``arrays`` every row at once from one array per column (``lead_id`` first, see :func:`column_arrays`)."""
        columns = sql.SQL(", ").join(map(sql.Identifier, ("lead_id", *names)))
        rows = sql.SQL("unnest({})").format(
            sql.SQL(", ").join(sql.SQL("%b::{}[]").format(sql.SQL(WRITTEN[n])) for n in ("lead_id", *names))
        )
        if insert:
            on_conflict = (
                sql.SQL("DO UPDATE SET {}").format(
                    sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in then_set)
                )
                if then_set
                else sql.SQL("DO NOTHING")
            )
            values = (
                sql.SQL("SELECT * FROM {}").format(rows)
                if arrays
                else sql.SQL("VALUES ({})").format(sql.SQL(", ").join(sql.Placeholder(n) for n in ("lead_id", *names)))
            )
            return sql.SQL("INSERT INTO {} ({}) {} ON CONFLICT (lead_id) {}").format(self.table, columns, values, on_conflict)
        if arrays:
            return sql.SQL("UPDATE {} AS t SET {} FROM {} AS v ({}) WHERE t.lead_id = v.lead_id").format(
                self.table,
                sql.SQL(", ").join(sql.SQL("{0} = v.{0}").format(sql.Identifier(n)) for n in names),
                rows,
                columns,
            )
        return sql.SQL("UPDATE {} SET {} WHERE lead_id = %(lead_id)s").format(
            self.table, sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(n), sql.Placeholder(n)) for n in names)
        )

    # --- queries -------------------------------------------------------------------------------

    def pool_page(self, filters: dict[str, str | None], limit: int, cursor: str | None) -> Page:
        """Leads nobody owns (won and lost excluded), newest first."""
        conditions = [sql.SQL("owner IS NULL AND NOT closed")]
        params: list[Any] = []
        for name in POOL_FILTERS:
            if filters.get(name) is not None:
                conditions.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
                params.append(filters[name])
        return self._page("captured_at", conditions, params, limit, cursor)

    def rep_page(self, rep_id: str, limit: int, cursor: str | None) -> Page:
        """The leads ``rep_id`` owns, most recently claimed first."""
        return self._page("claimed_at", [sql.SQL("owner = %s")], [rep_id], limit, cursor)

    def _page(self, order: str, conditions: list[sql.Composable], params: list[Any], limit: int, cursor: str | None) -> Page:
        key = sql.Identifier(order)
        if cursor is not None:
            conditions.append(sql.SQL("({}, lead_id) < (%s, %s)").format(key))
            params.extend(decode_cursor(cursor))
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} DESC, lead_id DESC LIMIT %s").format(
            sql.SQL(COLUMNS), self.table, sql.SQL(" AND ").join(conditions), key
        )
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query, [*params, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][order], rows[-1]["lead_id"]) if more else None
        return Page(rows, next_cursor)

    def due_leads(self, now: datetime, limit: int, after: tuple[datetime, str] | None = None) -> list[tuple[datetime, str]]:
        """``(due_at, lead_id)`` of leads whose deadline has passed, earliest first, after ``after``: an
        index range scan, whatever the number of leads not yet due."""
        condition = sql.SQL("due_at <= %s")
        params: list[Any] = [now]
        if after is not None:
            condition = sql.SQL("due_at <= %s AND (due_at, lead_id) > (%s, %s)")
            params.extend(after)
        query = sql.SQL("SELECT due_at, lead_id FROM {} WHERE {} ORDER BY due_at, lead_id LIMIT %s").format(self.table, condition)
        with self.pool.connection() as conn:
            return [(row[0], row[1]) for row in conn.execute(query, [*params, limit]).fetchall()]
