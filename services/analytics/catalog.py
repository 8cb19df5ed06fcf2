"""Projection instances and which one serves: versioned table sets switched without downtime.

Each instance is a schema ``<analytics>_r<N>`` holding the tables of one or more projections plus
its own consumption positions. ``<analytics>.serving`` says which instance serves each projection,
and the views ``<analytics>.<table>`` point at it. :meth:`Catalog.promote` moves the pointers and
replaces the views in one transaction: readers see the old tables or the new ones, never neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from psycopg import Connection, sql
from psycopg_pool import ConnectionPool

from services.analytics.projections import REGISTRY, Projection
from services.analytics.projections.base import in_schema
from shared.deadletters import DeadLetterTable

CATALOG_DDL = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    "CREATE SEQUENCE IF NOT EXISTS {schema}.instance_numbers",
    """CREATE TABLE IF NOT EXISTS {schema}.instances (
        name text PRIMARY KEY,
        projections text[] NOT NULL,
        state text NOT NULL CHECK (state IN ('building', 'serving', 'retired')),
        created_at timestamptz NOT NULL DEFAULT now(),
        promoted_at timestamptz
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.serving (
        projection text PRIMARY KEY,
        instance text NOT NULL REFERENCES {schema}.instances (name)
    )""",
)

# The leads an instance saw captured: only they get rows (services/analytics/tracking.py).
CAPTURED_LEADS_DDL = "CREATE TABLE IF NOT EXISTS {schema}.captured_leads (lead_id text PRIMARY KEY)"
# Consumption state of an instance, written in the same transaction as its projections' rows.
TRACKING_DDL = (
    "CREATE SCHEMA {schema}",
    """CREATE TABLE {schema}.positions (
        topic text NOT NULL,
        partition int NOT NULL,
        next_offset bigint NOT NULL,
        PRIMARY KEY (topic, partition)
    )""",
    "CREATE TABLE {schema}.processed_events (event_id text PRIMARY KEY)",
    CAPTURED_LEADS_DDL,
)


@dataclass(frozen=True)
class Instance:
    name: str
    projections: tuple[Projection, ...]

    @property
    def projection_names(self) -> list[str]:
        return [p.name for p in self.projections]


class UnknownProjection(LookupError):
    pass


def projections_named(names: Iterable[str]) -> tuple[Projection, ...]:
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise UnknownProjection(f"unknown projection(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    return tuple(REGISTRY[name] for name in dict.fromkeys(names))


class Catalog:
    def __init__(self, pool: ConnectionPool, schema: str) -> None:
        self.pool = pool
        self.schema = schema

    def _q(self, template: str) -> sql.Composed:
        return in_schema(template, self.schema)

    def _lock(self, conn: Connection) -> None:
        # The service and replay CLIs may change the catalog at the same time: one at a time.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"leadflow-catalog:{self.schema}",))

    def ensure_catalog(self) -> None:
        with self.pool.connection() as conn, conn.transaction():
            self._lock(conn)
            self._create_catalog(conn)

    def _create_catalog(self, conn: Connection) -> None:
        for statement in CATALOG_DDL:
            conn.execute(self._q(statement))
        DeadLetterTable(self.schema).create(conn)
        self._add_captured_leads(conn)

    def _add_captured_leads(self, conn: Connection) -> None:
        """Instances built before instances knew their captured leads get the table, filled with every lead
        they hold a row of (lenient: a stray lead that got a row then stays; new strays are refused)."""
        rows = conn.execute(
            self._q("""SELECT name FROM {schema}.instances i WHERE state <> 'retired' AND NOT EXISTS
                (SELECT 1 FROM information_schema.tables t WHERE t.table_schema = i.name AND t.table_name = 'captured_leads')""")
        ).fetchall()
        for (name,) in rows:
            conn.execute(in_schema(CAPTURED_LEADS_DDL, name))
            tables = conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = %s AND column_name = 'lead_id'"
                " AND table_name <> 'captured_leads'",
                (name,),
            ).fetchall()
            for (table,) in tables:
                conn.execute(
                    sql.SQL("INSERT INTO {} (lead_id) SELECT DISTINCT lead_id FROM {} ON CONFLICT DO NOTHING").format(
                        sql.Identifier(name, "captured_leads"), sql.Identifier(name, table)
                    )
                )

    def ensure_serving(self) -> None:
        """The catalog, and one serving instance for every registered projection that has none yet
        (the service's first start: it then builds them from offset 0 while serving)."""
        with self.pool.connection() as conn, conn.transaction():
            self._lock(conn)
            self._create_catalog(conn)
            serving = {row[0] for row in conn.execute(self._q("SELECT projection FROM {schema}.serving"))}
            missing = [name for name in REGISTRY if name not in serving]
            if missing:
                self._promote(conn, self._create(conn, projections_named(missing)))

    def create_instance(self, names: Iterable[str]) -> Instance:
        """A fresh, empty instance for a replay (state ``building``)."""
        projections = projections_named(names)
        with self.pool.connection() as conn, conn.transaction():
            self._lock(conn)
            return self._create(conn, projections)

    def _create(self, conn: Connection, projections: tuple[Projection, ...]) -> Instance:
        number = conn.execute(self._q("SELECT nextval('{schema}.instance_numbers')")).fetchone()[0]
        instance = Instance(f"{self.schema}_r{number}", projections)
        for statement in TRACKING_DDL + tuple(s for p in projections for s in p.ddl):
            conn.execute(in_schema(statement, instance.name))
        conn.execute(
            self._q("INSERT INTO {schema}.instances (name, projections, state) VALUES (%s, %s, 'building')"),
            (instance.name, instance.projection_names),
        )
        return instance

    def instance(self, name: str) -> Instance | None:
        with self.pool.connection() as conn:
            row = conn.execute(self._q("SELECT projections FROM {schema}.instances WHERE name = %s"), (name,)).fetchone()
        return None if row is None else Instance(name, projections_named(row[0]))

    def serving_instances(self) -> list[Instance]:
        """Instances that serve at least one projection: the ones the service keeps up to date."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                self._q("SELECT name, projections FROM {schema}.instances WHERE state = 'serving' ORDER BY name")
            ).fetchall()
        return [Instance(name, projections_named(names)) for name, names in rows]

    def serving(self) -> dict[str, str]:
        """Which instance serves each projection (projection name → instance name)."""
        with self.pool.connection() as conn:
            return dict(conn.execute(self._q("SELECT projection, instance FROM {schema}.serving")).fetchall())

    def describe(self) -> list[tuple]:
        """Every instance: name, state, projections, created, promoted."""
        with self.pool.connection() as conn:
            return conn.execute(
                self._q("SELECT name, state, projections, created_at, promoted_at FROM {schema}.instances ORDER BY created_at")
            ).fetchall()

    def promote(self, instance: Instance) -> None:
        """Make ``instance`` serve its projections (pointers and views switched in one transaction)."""
        with self.pool.connection() as conn, conn.transaction():
            self._lock(conn)
            self._promote(conn, instance)

    def _promote(self, conn: Connection, instance: Instance) -> None:
        for projection in instance.projections:
            for table in projection.tables:
                view, target = sql.Identifier(self.schema, table), sql.Identifier(instance.name, table)
                conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
                conn.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(view, target))
            conn.execute(
                self._q(
                    """INSERT INTO {schema}.serving (projection, instance) VALUES (%s, %s)
                    ON CONFLICT (projection) DO UPDATE SET instance = EXCLUDED.instance"""
                ),
                (projection.name, instance.name),
            )
        conn.execute(
            self._q("UPDATE {schema}.instances SET state = 'serving', promoted_at = now() WHERE name = %s"), (instance.name,)
        )
        conn.execute(
            self._q(
                """UPDATE {schema}.instances SET state = 'retired' WHERE state = 'serving'
                AND name NOT IN (SELECT instance FROM {schema}.serving)"""
            )
        )

    def drop_retired(self) -> list[str]:
        """Drop the schemas of instances that serve nothing any more; returns their names."""
        with self.pool.connection() as conn, conn.transaction():
            self._lock(conn)
            names = [row[0] for row in conn.execute(self._q("SELECT name FROM {schema}.instances WHERE state = 'retired'"))]
            for name in names:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            conn.execute(self._q("DELETE FROM {schema}.instances WHERE state = 'retired'"))
        return names
