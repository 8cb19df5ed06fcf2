"""Exactly-once effect for an instance: rows, positions and processed event ids in one transaction.

The position row of the partition is locked first (``FOR UPDATE``), so two consumers of the same
instance (the service and a replay CLI) never apply the same batch twice; a batch ending at or
before the stored position is skipped; an event whose CloudEvents ``id`` was applied before (a
republication at a later offset) is dropped by the insert into ``processed_events``.
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from services.analytics.catalog import Instance
from services.analytics.projections import Fact
from services.analytics.projections.base import array_literal, in_schema
from shared.consumer import Delivered

ENSURE_POSITION = "INSERT INTO {schema}.positions (topic, partition, next_offset) VALUES (%s, %s, 0) ON CONFLICT DO NOTHING"
LOCK_POSITION = "SELECT next_offset FROM {schema}.positions WHERE topic = %s AND partition = %s FOR UPDATE"
MARK_PROCESSED = """INSERT INTO {schema}.processed_events (event_id) SELECT unnest(%s::text[])
    ON CONFLICT DO NOTHING RETURNING event_id"""
STORE_POSITION = "UPDATE {schema}.positions SET next_offset = %s WHERE topic = %s AND partition = %s"


class InstanceWriter:
    """The position loader and batch handler :class:`shared.consumer.TopicConsumer` takes, for one instance."""

    def __init__(self, pool: ConnectionPool, instance: Instance, topic: str) -> None:
        self.pool = pool
        self.instance = instance
        self.topic = topic

    def load_positions(self, partitions: list[int]) -> dict[int, int | None]:
        """Next offset to read per partition (None: from the start); every stored one when ``partitions`` is empty."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                in_schema("SELECT partition, next_offset FROM {schema}.positions WHERE topic = %s", self.instance.name),
                (self.topic,),
            ).fetchall()
        stored = dict(rows)
        return {partition: stored.get(partition) for partition in partitions or stored}

    def handle_batch(self, partition: int, delivered: list[Delivered], next_offset: int) -> int:
        """Apply one partition's batch to every projection of the instance; returns how many events were new."""
        schema = self.instance.name
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # Rows and positions commit together, so a crash can only lose a whole suffix of batches,
            # which are then read again from the topic: waiting for each WAL flush buys nothing here.
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute(in_schema(ENSURE_POSITION, schema), (self.topic, partition))
            cur.execute(in_schema(LOCK_POSITION, schema), (self.topic, partition))
            stored = cur.fetchone()[0]
            if stored >= next_offset:
                return 0
            unseen = [d for d in delivered if d.offset >= stored]
            facts: list[Fact] = []
            if unseen:
                cur.execute(in_schema(MARK_PROCESSED, schema), (array_literal([d.envelope.id for d in unseen]),))
                fresh = {row[0] for row in cur.fetchall()}
                for item in unseen:
                    if item.envelope.id in fresh:
                        fresh.discard(item.envelope.id)  # the same id twice in one batch applies once
                        facts.append(Fact.of(item))
            if facts:
                for projection in self.instance.projections:
                    projection.apply(cur, schema, facts)
            cur.execute(in_schema(STORE_POSITION, schema), (next_offset, self.topic, partition))
            return len(facts)
