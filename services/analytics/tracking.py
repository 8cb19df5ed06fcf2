"""Exactly-once effect for an instance: rows, positions and processed event ids in one transaction.

The position rows of the poll's partitions are locked first (``FOR UPDATE``, in partition order), so
two consumers of the same instance (the service and a replay CLI) never apply the same batch twice; a
partition's batch ending at or before its stored position is skipped; an event whose CloudEvents ``id``
was applied before (a republication at a later offset) is dropped by the insert into ``processed_events``.

Only captured leads have rows (``docs/analytics.md``, "Leads that were never captured"): each instance
keeps the ids of the leads it saw captured. A second ``LeadCaptured`` of a known lead (a new CloudEvents
id: intake records one capture per lead, so it is a duplicate by meaning) is ignored, so it cannot
restate the lead; an event of a lead never captured is refused, and the consumer parks it (reason
``unknown-lead``) instead of letting it invent a row. What a writer parks goes to the service's own
``dead_letters`` table, with the position that moves past it.
"""

from __future__ import annotations

import logging

from psycopg import Cursor
from psycopg_pool import ConnectionPool

from services.analytics.catalog import Instance
from services.analytics.projections import Fact
from services.analytics.projections.base import array_literal, in_schema
from shared.consumer import Delivered, PartitionBatch
from shared.deadletters import UNKNOWN_LEAD, DeadLetter, DeadLetterTable, Entry, PooledDeadLetters
from shared.deadletters.guard import Refused

log = logging.getLogger(__name__)

ENSURE_POSITION = "INSERT INTO {schema}.positions (topic, partition, next_offset) VALUES (%s, %s, 0) ON CONFLICT DO NOTHING"
LOCK_POSITION = "SELECT next_offset FROM {schema}.positions WHERE topic = %s AND partition = %s FOR UPDATE"
MARK_PROCESSED = """INSERT INTO {schema}.processed_events (event_id) SELECT unnest(%s::text[])
    ON CONFLICT DO NOTHING RETURNING event_id"""
STORE_POSITION = "UPDATE {schema}.positions SET next_offset = %s WHERE topic = %s AND partition = %s"
KNOWN_LEADS = "SELECT lead_id FROM {schema}.captured_leads WHERE lead_id = ANY(%s::text[])"
CAPTURED = """INSERT INTO {schema}.captured_leads (lead_id) SELECT unnest(%s::text[])
    ON CONFLICT DO NOTHING RETURNING lead_id"""


class InstanceWriter(PooledDeadLetters):
    """The position loader, batch handler and dead-letter store :class:`shared.consumer.TopicConsumer`
    takes, for one instance; ``service_schema`` holds the service's ``dead_letters`` table."""

    def __init__(self, pool: ConnectionPool, instance: Instance, topic: str, service_schema: str) -> None:
        self.pool = pool
        self.instance = instance
        self.topic = topic
        self.dead_letters = DeadLetterTable(service_schema)

    @property
    def worker(self) -> str:
        """The name of the worker that follows this instance (in the service and in a replay alike)."""
        return f"instance-{self.instance.name}"

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
            facts = self._fresh_facts(cur, unseen)
            if facts:
                self._apply(cur, facts)
            for batch in advanced:
                cur.execute(in_schema(STORE_POSITION, schema), (batch.next_offset, self.topic, batch.partition))
            return len(facts)

    def _fresh_facts(self, cur: Cursor, unseen: list[Delivered]) -> list[Fact]:
        """The events not applied before (by CloudEvents id), marked applied (in the caller's transaction)."""
        if not unseen:
            return []
        cur.execute(in_schema(MARK_PROCESSED, self.instance.name), (array_literal([d.envelope.id for d in unseen]),))
        fresh = {row[0] for row in cur.fetchall()}
        facts: list[Fact] = []
        for item in unseen:
            if item.envelope.id in fresh:
                fresh.discard(item.envelope.id)  # the same id twice in one batch applies once
                facts.append(Fact.of(item))
        return facts

    def _apply(self, cur: Cursor, facts: list[Fact]) -> None:
        """Facts of captured leads to every projection; a lead's first capture makes it known. Raises
        :class:`Refused` (the caller's transaction then writes nothing) naming the events of leads never captured."""
        schema = self.instance.name
        # The batch's captures first: the insert says which are first captures, so only the leads of the
        # other events that were not captured in this batch are looked up (in a replay, few: a batch mostly
        # holds whole lead histories).
        captures = {f.lead_id for f in facts if f.type == "LeadCaptured"}
        first: set[str] = set()
        if captures:
            cur.execute(in_schema(CAPTURED, schema), (array_literal(captures),))
            first = {row[0] for row in cur.fetchall()}
        others = {f.lead_id for f in facts if f.type != "LeadCaptured"} - first
        known: set[str] = set()
        if others:
            cur.execute(in_schema(KNOWN_LEADS, schema), (array_literal(others),))
            known = {row[0] for row in cur.fetchall()}
        kept: list[Fact] = []
        refused: dict[tuple[int, int], tuple[str, str]] = {}
        for fact in facts:  # in topic order per lead (a lead lives in one partition)
            if fact.type == "LeadCaptured":
                if fact.lead_id not in first or fact.lead_id in known:
                    log.warning(
                        "ignored a second LeadCaptured of a known lead",
                        extra={"lead_id": fact.lead_id, "event_id": fact.event_id, "instance": schema},
                    )
                    continue
                known.add(fact.lead_id)
            elif fact.lead_id not in known:
                refused[(fact.partition, fact.offset)] = (UNKNOWN_LEAD, f"{fact.type} of lead {fact.lead_id}, never captured")
                continue
            kept.append(fact)
        if refused:
            raise Refused(refused)
        if kept:
            for projection in self.instance.projections:
                projection.apply(cur, schema, kept)

    # --- the consumer's dead-letter store ---------------------------------------------------------------

    def park(self, letter: DeadLetter, next_offset: int) -> bool:
        """Record ``letter`` and move the partition's position to ``next_offset``, in one transaction."""
        schema = self.instance.name
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(in_schema(ENSURE_POSITION, schema), (self.topic, letter.partition))
            cur.execute(in_schema(LOCK_POSITION, schema), (self.topic, letter.partition))
            if cur.fetchone()[0] >= next_offset:
                return False
            self.dead_letters.insert(cur, [letter])
            cur.execute(in_schema(STORE_POSITION, schema), (next_offset, self.topic, letter.partition))
            return True

    def redrive(self, entry: Entry, delivered: Delivered) -> bool:
        """Apply a re-driven event at its place on the topic (its partition and offset), once, and resolve its entry."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if not self.dead_letters.resolve(cur, entry.id):
                return False
            facts = self._fresh_facts(cur, [delivered])
            if facts:
                self._apply(cur, facts)
            return True
