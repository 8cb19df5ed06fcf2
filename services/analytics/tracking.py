"""Exactly-once effect for an instance: rows, positions and processed event ids in one transaction.

The position rows of the poll's partitions are locked first (``FOR UPDATE``, in partition order), so
two consumers of the same instance (the service and a replay CLI) never apply the same batch twice; a
partition's batch ending at or before its stored position is skipped; an event whose CloudEvents ``id``
was applied before (a republication at a later offset) is dropped by the insert into ``processed_events``.
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from services.analytics.catalog import Instance
from services.analytics.projections import Fact
from services.analytics.projections.base import array_literal, in_schema
from shared.consumer import Delivered, PartitionBatch

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

    def handle_batch(self, batches: list[PartitionBatch]) -> int:
        """Apply what one poll brought to every projection of the instance, in one transaction; returns how
        many events were new. A partition's batch ending at or before its stored position is skipped."""
        schema = self.instance.name
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # Rows and positions commit together, so a crash can only lose a whole suffix of batches,
            # which are then read again from the topic: waiting for each WAL flush buys nothing here.
            cur.execute("SET LOCAL synchronous_commit = off")
            unseen: list[Delivered] = []
            advanced: list[PartitionBatch] = []
            for batch in batches:  # in partition order (the consumer's): one lock order for every writer
                cur.execute(in_schema(ENSURE_POSITION, schema), (self.topic, batch.partition))
                cur.execute(in_schema(LOCK_POSITION, schema), (self.topic, batch.partition))
                stored = cur.fetchone()[0]
                if stored < batch.next_offset:
                    unseen.extend(d for d in batch.delivered if d.offset >= stored)
                    advanced.append(batch)
            if not advanced:
                return 0
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
            for batch in advanced:
                cur.execute(in_schema(STORE_POSITION, schema), (batch.next_offset, self.topic, batch.partition))
            return len(facts)
