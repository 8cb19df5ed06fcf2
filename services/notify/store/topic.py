"""Applying the topic exactly once: what each event calls for is written in the same transaction as the positions.

For every event: the webhook deliveries it calls for (one per subscription that wants its type, queued in the
event's lane), the notices to people and the reminders (:func:`services.notify.domain.notices.decide`), and what
it teaches about leads and people. A partition's batch ending at or before its stored position is skipped; a
re-published event (same CloudEvents ``id`` at a later offset) adds nothing, as every row it would add is keyed by
that id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import orjson
from psycopg import Cursor
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.notify.domain.notices import Notice, Rules, decide
from services.notify.domain.subscriptions import wants
from services.notify.store.facts import BatchFacts
from services.notify.store.tables import NIL_REPLAY, Tables
from shared.clock import Clock
from shared.consumer import Delivered, PartitionBatch
from shared.deadletters import DeadLetter, DeadLetterTable, Entry, PooledDeadLetters
from shared.events import encode

log = logging.getLogger(__name__)

ERASED = "[erased]"
# Payload fields that hold the customer's personal data: gone from every stored event body on PersonalDataErased.
PERSONAL_FIELDS = ("name", "phone", "email", "wechat", "needs", "summary", "pain_points", "objections", "next_step")


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: UUID
    types: frozenset[str] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    subscription_id: UUID
    event_id: str
    lead_key: str
    type: str
    time: datetime
    position: int
    body: bytes


def delivery_row(subscription_id: UUID, item: Delivered) -> DeliveryRow:
    envelope = item.envelope
    body = item.raw if item.raw is not None else encode(envelope)
    return DeliveryRow(subscription_id, envelope.id, envelope.subject, envelope.type, envelope.time, item.offset, body)


def subscribers(cur: Cursor, t: Tables) -> list[Subscriber]:
    """Subscriptions that receive events (paused ones too: their deliveries wait until they are resumed)."""
    cur.execute(t.q("SELECT id, types, created_at FROM {s}.subscriptions WHERE state <> 'deleted'"))
    return [Subscriber(i, frozenset(types) if types else None, created) for i, types, created in cur.fetchall()]


def enqueue_deliveries(cur: Cursor, t: Tables, rows: Sequence[DeliveryRow], now: datetime, replay_id: str = NIL_REPLAY) -> int:
    """Queue deliveries (each once per subscription, event and replay) in their lanes; returns how many are new."""
    if not rows:
        return 0
    bodies = {row.event_id: row for row in rows}
    cur.execute(
        t.q(
            "INSERT INTO {s}.webhook_events (event_id, lead_key, type, time, body)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::bytea[])"
            " ON CONFLICT (event_id) DO NOTHING"
        ),
        (
            list(bodies),
            [r.lead_key for r in bodies.values()],
            [r.type for r in bodies.values()],
            [r.time for r in bodies.values()],
            [r.body for r in bodies.values()],
        ),
    )
    cur.execute(
        t.q(
            "INSERT INTO {s}.deliveries (subscription_id, event_id, lead_key, type, event_time, position, replay_id, created_at)"
            " SELECT u.*, %s::uuid, %s::timestamptz FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::text[],"
            " %b::timestamptz[], %b::bigint[])"
            " AS u ON CONFLICT (subscription_id, event_id, replay_id) DO NOTHING RETURNING subscription_id, lead_key"
        ),
        (
            replay_id,
            now,
            [r.subscription_id for r in rows],
            [r.event_id for r in rows],
            [r.lead_key for r in rows],
            [r.type for r in rows],
            [r.time for r in rows],
            [r.position for r in rows],
        ),
    )
    added = Counter(cur.fetchall())
    if added:
        lanes = sorted(added)  # one lock order for every writer of lanes
        # A paused subscription's new lanes wait at 'infinity' (resuming sets them due), so finding due work
        # never walks a paused subscription's backlog.
        cur.execute(
            t.q(
                "INSERT INTO {s}.lanes (subscription_id, lead_key, pending, next_attempt_at)"
                " SELECT u.sid, u.lead_key, u.n, CASE WHEN s.state = 'active' THEN %s::timestamptz ELSE"
                " 'infinity'::timestamptz END"
                " FROM unnest(%b::uuid[], %b::text[], %b::int[]) AS u(sid, lead_key, n)"
                " JOIN {s}.subscriptions s ON s.id = u.sid ORDER BY u.sid, u.lead_key"
                " ON CONFLICT (subscription_id, lead_key) DO UPDATE SET pending = {s}.lanes.pending + EXCLUDED.pending"
            ),
            (now, [sid for sid, _ in lanes], [key for _, key in lanes], [added[lane] for lane in lanes]),
        )
    return sum(added.values())


def insert_notices(cur: Cursor, t: Tables, notices: Sequence[tuple[str, datetime, Notice]], now: datetime) -> None:
    """Queue notices to people, each once (``dedup_key``: what caused it, to whom, which kind)."""
    if not notices:
        return
    cur.executemany(
        t.q(
            "INSERT INTO {s}.notices (dedup_key, recipient, kind, lead_id, params, event_time, created_at, state)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'new') ON CONFLICT (dedup_key) DO NOTHING"
        ),
        [
            (f"{cause}:{n.recipient}:{n.kind}", n.recipient, n.kind, n.lead_id, Jsonb(n.params), at, now)
            for cause, at, n in notices
        ],
    )


def erase(cur: Cursor, t: Tables, lead_ids: Sequence[str]) -> None:
    """Drop the customer's personal data from what notify keeps: notices, the feed, stored event bodies."""
    cur.execute(
        t.q(
            "UPDATE {s}.notices SET params = params || jsonb_build_object('lead_name', NULL, 'company', NULL) WHERE lead_id"
            " = ANY(%s)"
        ),
        (list(lead_ids),),
    )
    cur.execute(t.q("UPDATE {s}.feed SET title = %s, body = '' WHERE lead_id = ANY(%s)"), (ERASED, list(lead_ids)))
    cur.execute(t.q("SELECT event_id, body FROM {s}.webhook_events WHERE lead_key = ANY(%s)"), (list(lead_ids),))
    scrubbed = [(scrub(bytes(body)), event_id) for event_id, body in cur.fetchall()]
    if scrubbed:
        cur.executemany(t.q("UPDATE {s}.webhook_events SET body = %s WHERE event_id = %s"), scrubbed)


def scrub(body: bytes) -> bytes:
    event = orjson.loads(body)
    data = event.get("data") or {}
    for name in PERSONAL_FIELDS:
        if data.get(name) is not None:
            data[name] = ERASED
    if data.get("contacts"):
        data["contacts"] = []
    return orjson.dumps(event)


class TopicWriter(PooledDeadLetters):
    """The position loader and batch handler :class:`shared.consumer.TopicConsumer` takes, for notify's live consumer."""

    def __init__(
        self,
        pool: ConnectionPool,
        tables: Tables,
        topic: str,
        rules: Rules,
        clock: Clock,
        on_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self.pool = pool
        self.t = tables
        self.topic = topic
        self.rules = rules
        self.clock = clock
        self.on_committed = on_committed
        self.dead_letters = DeadLetterTable(tables.schema)

    def load_positions(self, partitions: list[int]) -> dict[int, int | None]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                self.t.q("SELECT partition, next_offset FROM {s}.positions WHERE topic = %s"), (self.topic,)
            ).fetchall()
        stored = dict(rows)
        return {p: stored.get(p) for p in partitions}

    def handle_batch(self, batches: list[PartitionBatch]) -> int:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # Effects and positions commit together: a crash loses at most a suffix of whole batches, read again.
            cur.execute("SET LOCAL synchronous_commit = off")
            unseen: list[Delivered] = []
            advanced: list[PartitionBatch] = []
            for batch in batches:  # partition order: one lock order for every writer
                cur.execute(
                    self.t.q(
                        "INSERT INTO {s}.positions (topic, partition, next_offset) VALUES (%s, %s, 0) ON CONFLICT DO NOTHING"
                    ),
                    (self.topic, batch.partition),
                )
                cur.execute(
                    self.t.q("SELECT next_offset FROM {s}.positions WHERE topic = %s AND partition = %s FOR UPDATE"),
                    (self.topic, batch.partition),
                )
                stored = cur.fetchone()[0]
                if stored < batch.next_offset:
                    unseen.extend(d for d in batch.delivered if d.offset >= stored)
                    advanced.append(batch)
            if not advanced:
                return 0
            applied = self._apply(cur, unseen)
            cur.executemany(
                self.t.q("UPDATE {s}.positions SET next_offset = %s WHERE topic = %s AND partition = %s"),
                [(b.next_offset, self.topic, b.partition) for b in advanced],
            )
        self.on_committed()
        return applied

    # --- the consumer's dead-letter store (shared.deadletters.guard.DeadLetterStore) -----------------------

    def park(self, letter: DeadLetter, next_offset: int) -> bool:
        """Record ``letter`` and move the partition's position to ``next_offset``, in one transaction."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q("INSERT INTO {s}.positions (topic, partition, next_offset) VALUES (%s, %s, 0) ON CONFLICT DO NOTHING"),
                (self.topic, letter.partition),
            )
            cur.execute(
                self.t.q("SELECT next_offset FROM {s}.positions WHERE topic = %s AND partition = %s FOR UPDATE"),
                (self.topic, letter.partition),
            )
            if cur.fetchone()[0] >= next_offset:
                return False
            self.dead_letters.insert(cur, [letter])
            cur.execute(
                self.t.q("UPDATE {s}.positions SET next_offset = %s WHERE topic = %s AND partition = %s"),
                (next_offset, self.topic, letter.partition),
            )
            return True

    def redrive(self, entry: Entry, delivered: Delivered) -> bool:
        """Apply a re-driven event once (deliveries and notices are keyed by its id) and resolve its entry."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if not self.dead_letters.resolve(cur, entry.id):
                return False
            self._apply(cur, [delivered])
        self.on_committed()
        return True

    def _apply(self, cur: Cursor, unseen: list[Delivered]) -> int:
        if not unseen:
            return 0
        now = self.clock()
        subs = subscribers(cur, self.t)
        facts = BatchFacts(cur, self.t)
        rows: list[DeliveryRow] = []
        notices: list[tuple[str, datetime, Notice]] = []
        reminders = []
        settled: list[str] = []
        for item in unseen:
            envelope, payload = item.envelope, item.payload
            facts.apply(payload, envelope.time)
            effects = decide(payload, envelope.time, now, facts, self.rules)
            notices.extend((envelope.id, envelope.time, notice) for notice in effects.notices)
            reminders.extend(effects.reminders)
            settled.extend(effects.settled_tasks)
            for sub in subs:
                if wants(sub.types, envelope.type) and envelope.time >= sub.created_at:
                    rows.append(delivery_row(sub.id, item))
        facts.flush(now)
        enqueue_deliveries(cur, self.t, rows, now)
        insert_notices(cur, self.t, notices, now)
        if reminders:
            cur.executemany(
                self.t.q(
                    "INSERT INTO {s}.reminders (task_id, lead_id, rep_id, title, due_at, remind_at, state)"
                    " VALUES (%s, %s, %s, %s, %s, %s, 'waiting') ON CONFLICT (task_id) DO NOTHING"
                ),
                [(r.task_id, r.lead_id, r.rep_id, r.title, r.due_at, r.remind_at) for r in reminders],
            )
        if settled:
            cur.execute(
                self.t.q("UPDATE {s}.reminders SET state = 'settled' WHERE task_id = ANY(%s) AND state = 'waiting'"), (settled,)
            )
        if facts.erased:
            erase(cur, self.t, facts.erased)
        return len(unseen)
