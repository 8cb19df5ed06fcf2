"""The webhook delivery queue: claiming the heads of due lanes, and recording how their attempts ended.

Claiming locks due lanes (``FOR UPDATE SKIP LOCKED``, so replicas never take the same lane) and leases them by
moving their ``next_attempt_at`` past the attempt's time-out: a worker that dies mid-attempt leaves the lane to be
tried again after the lease (at least once; receivers de-duplicate on ``webhook-id``). Completing a batch of
attempts is one transaction: the deliveries, their attempt log, their lanes and their subscriptions' health.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from psycopg import Cursor
from psycopg_pool import ConnectionPool

from services.notify.domain.attempts import Answer, Delivered, Next, Parked, RetryAt
from services.notify.domain.notices import Notice
from services.notify.store.tables import Tables
from services.notify.store.topic import insert_notices


@dataclass(frozen=True, slots=True)
class Work:
    """The head of a lane, leased for one attempt."""

    delivery_id: int
    subscription_id: UUID
    lead_key: str
    event_id: str
    type: str
    event_time: datetime
    attempts: int
    failures: int
    first_attempt_at: datetime | None
    body: bytes
    url: str
    secret: str
    previous_secret: str | None = None
    """Also signed with, during a rotation's grace period."""


@dataclass(frozen=True, slots=True)
class Outcome:
    work: Work
    answer: Answer
    at: datetime
    duration: float
    next: Next


_CLAIM = """
SELECT l.subscription_id, l.lead_key FROM {s}.lanes l JOIN {s}.subscriptions s ON s.id = l.subscription_id
WHERE l.next_attempt_at <= %s AND s.state = 'active' AND NOT (l.subscription_id = ANY(%s::uuid[]))
ORDER BY l.next_attempt_at LIMIT %s FOR UPDATE OF l SKIP LOCKED
"""
_HEADS = """
SELECT h.id, u.sid, u.lead_key, h.event_id, h.type, h.event_time, h.attempts, h.failures, h.first_attempt_at,
       e.body, s.url, s.secret, CASE WHEN s.previous_secret_until > %s THEN s.previous_secret END
FROM unnest(%b::uuid[], %b::text[]) AS u(sid, lead_key)
CROSS JOIN LATERAL (
    SELECT d.id, d.event_id, d.type, d.event_time, d.attempts, d.failures, d.first_attempt_at FROM {s}.deliveries d
    WHERE d.subscription_id = u.sid AND d.lead_key = u.lead_key AND d.status = 'pending'
    ORDER BY d.position, d.id LIMIT 1) h
JOIN {s}.webhook_events e ON e.event_id = h.event_id
JOIN {s}.subscriptions s ON s.id = u.sid
"""
_RECORD = """
UPDATE {s}.deliveries d SET status = u.status, attempts = d.attempts + 1, failures = u.failures,
    first_attempt_at = COALESCE(d.first_attempt_at, u.at), last_attempt_at = u.at, next_attempt_at = u.next_at,
    last_status = u.last_status, last_error = u.last_error, delivered_at = u.delivered_at
FROM unnest(%b::bigint[], %b::text[], %b::int[], %b::timestamptz[], %b::int[], %b::text[], %b::timestamptz[], %b::timestamptz[])
    AS u(id, status, failures, next_at, last_status, last_error, delivered_at, at)
WHERE d.id = u.id AND d.status = 'pending'
RETURNING d.id, d.attempts
"""
_LOG = """
INSERT INTO {s}.attempts (delivery_id, attempt, at, status, error, duration_ms)
SELECT * FROM unnest(%b::bigint[], %b::int[], %b::timestamptz[], %b::int[], %b::text[], %b::real[]) ON CONFLICT DO NOTHING
"""
_ADVANCE_LANES = """
UPDATE {s}.lanes l SET pending = l.pending - u.done,
    next_attempt_at = CASE WHEN s.state = 'active' THEN u.next_at ELSE 'infinity'::timestamptz END
FROM unnest(%b::uuid[], %b::text[], %b::int[], %b::timestamptz[]) AS u(sid, lead_key, done, next_at), {s}.subscriptions s
WHERE l.subscription_id = u.sid AND l.lead_key = u.lead_key AND s.id = u.sid
"""
_DROP_EMPTY_LANES = """
DELETE FROM {s}.lanes l USING unnest(%b::uuid[], %b::text[]) AS u(sid, lead_key)
WHERE l.subscription_id = u.sid AND l.lead_key = u.lead_key AND l.pending <= 0
"""

# The outer DELETE sees the deliveries as they were before the statement (one snapshot): ``gone`` is excluded by hand.
_PURGE = """
WITH gone AS (
    DELETE FROM {s}.deliveries WHERE id IN (
        SELECT id FROM {s}.deliveries WHERE status IN ('delivered', 'cancelled') AND created_at < %s ORDER BY id LIMIT %s)
    RETURNING id, event_id),
logs AS (DELETE FROM {s}.attempts WHERE delivery_id IN (SELECT id FROM gone))
DELETE FROM {s}.webhook_events e WHERE e.event_id IN (SELECT event_id FROM gone)
    AND NOT EXISTS (SELECT 1 FROM {s}.deliveries d WHERE d.event_id = e.event_id AND d.id NOT IN (SELECT id FROM gone))
"""


# Every writer takes its row locks in one order, deliveries → lanes (sorted by subscription and lead) →
# subscriptions (sorted by id), so the consumer, the dispatcher's records and the API never deadlock one another.
_LOCK_LANES = """
SELECT 1 FROM {s}.lanes l JOIN unnest(%b::uuid[], %b::text[]) AS u(sid, lead_key)
    ON l.subscription_id = u.sid AND l.lead_key = u.lead_key
ORDER BY l.subscription_id, l.lead_key FOR UPDATE OF l
"""
_LOCK_LANES_OF = "SELECT 1 FROM {s}.lanes WHERE subscription_id = ANY(%s) ORDER BY subscription_id, lead_key FOR UPDATE"


def lock_lanes_of(cur: Cursor, t: Tables, ids: Sequence[UUID]) -> None:
    cur.execute(t.q(_LOCK_LANES_OF), (sorted(ids),))


def pause_subscriptions(cur: Cursor, t: Tables, ids: Sequence[UUID], reason: str, now: datetime) -> list[tuple[UUID, str, str]]:
    """Pause active subscriptions (their lanes wait at 'infinity'); returns (id, owner, url) of those paused now."""
    ids = sorted(ids)
    lock_lanes_of(cur, t, ids)
    cur.execute(
        t.q(
            "UPDATE {s}.subscriptions SET state = 'paused', paused_reason = %s, updated_at = %s"
            " WHERE id IN (SELECT id FROM {s}.subscriptions WHERE id = ANY(%s) AND state = 'active' ORDER BY id FOR UPDATE)"
            " RETURNING id, owner, url"
        ),
        (reason, now, ids),
    )
    paused = cur.fetchall()
    if paused:
        cur.execute(
            t.q("UPDATE {s}.lanes SET next_attempt_at = 'infinity' WHERE subscription_id = ANY(%s)"), ([p[0] for p in paused],)
        )
    return paused


def tell_owners(cur: Cursor, t: Tables, paused: Sequence[tuple[UUID, str, str]], reason: str, now: datetime) -> None:
    notices = [
        (
            f"paused:{sid}:{now.isoformat()}",
            now,
            Notice(owner, "webhook_paused", None, {"subscription_id": str(sid), "url": url, "reason": reason}),
        )
        for sid, owner, url in paused
    ]
    insert_notices(cur, t, notices, now)


class DeliveryQueue:
    def __init__(self, pool: ConnectionPool, tables: Tables, lease: timedelta) -> None:
        self.pool = pool
        self.t = tables
        self.lease = lease

    def claim(self, now: datetime, limit: int, room: Mapping[UUID, int], default_room: int) -> list[Work]:
        """Lease up to ``limit`` due lane heads, at most ``room[sub]`` (else ``default_room``) per subscription."""
        full = [sid for sid, free in room.items() if free <= 0]
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # A lease lost in a crash only means the lane is tried again: no need to wait for the WAL flush.
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute(self.t.q(_CLAIM), (now, full, limit))
            taken: list[tuple[UUID, str]] = []
            left = dict(room)
            for sid, lead_key in cur.fetchall():
                free = left.get(sid, default_room)
                if free > 0:
                    left[sid] = free - 1
                    taken.append((sid, lead_key))
            if not taken:
                return []
            cur.execute(
                self.t.q(
                    "UPDATE {s}.lanes l SET next_attempt_at = %s FROM unnest(%b::uuid[], %b::text[]) AS u(sid, lead_key)"
                    " WHERE l.subscription_id = u.sid AND l.lead_key = u.lead_key"
                ),
                (now + self.lease, [sid for sid, _ in taken], [key for _, key in taken]),
            )
            cur.execute(self.t.q(_HEADS), (now, [sid for sid, _ in taken], [key for _, key in taken]))
            work = [Work(*row[:9], bytes(row[9]), row[10], row[11], row[12]) for row in cur.fetchall()]
            headless = set(taken) - {(w.subscription_id, w.lead_key) for w in work}
            if headless:  # a lane whose count went wrong: nothing waits in it, so it goes
                cur.execute(
                    self.t.q(
                        "DELETE FROM {s}.lanes l USING unnest(%b::uuid[], %b::text[]) AS u(sid, lead_key)"
                        " WHERE l.subscription_id = u.sid AND l.lead_key = u.lead_key"
                    ),
                    ([sid for sid, _ in headless], [key for _, key in headless]),
                )
            return work

    def complete(self, outcomes: Sequence[Outcome], now: datetime) -> list[tuple[UUID, str, str]]:
        """Record a batch of attempts; returns the subscriptions paused because their endpoint is gone (410)."""
        if not outcomes:
            return []
        outcomes = sorted(outcomes, key=lambda o: (o.work.subscription_id, o.work.lead_key))
        rows = [_record_row(o) for o in outcomes]
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute(self.t.q(_RECORD), tuple(list(column) for column in zip(*rows, strict=True)))
            attempt_of = dict(cur.fetchall())
            recorded = [o for o in outcomes if o.work.delivery_id in attempt_of]
            if not recorded:
                return []
            cur.execute(
                self.t.q(_LOG),
                (
                    [o.work.delivery_id for o in recorded],
                    [attempt_of[o.work.delivery_id] for o in recorded],
                    [o.at for o in recorded],
                    [o.answer.status for o in recorded],
                    [o.answer.error for o in recorded],
                    [o.duration * 1000 for o in recorded],
                ),
            )
            sids = [o.work.subscription_id for o in recorded]
            keys = [o.work.lead_key for o in recorded]
            cur.execute(self.t.q(_LOCK_LANES), (sids, keys))
            cur.execute(
                self.t.q(_ADVANCE_LANES),
                (
                    sids,
                    keys,
                    [0 if isinstance(o.next, RetryAt) else 1 for o in recorded],
                    [o.next.at if isinstance(o.next, RetryAt) else now for o in recorded],
                ),
            )
            cur.execute(self.t.q(_DROP_EMPTY_LANES), (sids, keys))
            failed = sorted({o.work.subscription_id for o in recorded if not o.answer.ok})
            succeeded = sorted({o.work.subscription_id for o in recorded if o.answer.ok})
            if failed or succeeded:
                cur.execute(
                    self.t.q("SELECT 1 FROM {s}.subscriptions WHERE id = ANY(%s) ORDER BY id FOR UPDATE"),
                    (sorted({*failed, *succeeded}),),
                )
            if failed:
                cur.execute(
                    self.t.q("UPDATE {s}.subscriptions SET failing_since = COALESCE(failing_since, %s) WHERE id = ANY(%s)"),
                    (now, failed),
                )
            if succeeded:
                cur.execute(
                    self.t.q("UPDATE {s}.subscriptions SET failing_since = NULL, last_success_at = %s WHERE id = ANY(%s)"),
                    (now, succeeded),
                )
            gone = sorted({o.work.subscription_id for o in recorded if isinstance(o.next, Parked) and o.next.pause_subscription})
            paused = pause_subscriptions(cur, self.t, gone, "the receiver answered 410 Gone", now) if gone else []
            if paused:
                tell_owners(cur, self.t, paused, "gone", now)
            return paused

    def pause_failing(self, now: datetime, failing_for: timedelta) -> list[tuple[UUID, str, str]]:
        """Pause every subscription that has not had one successful delivery for ``failing_for``, and tell its owner."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q("SELECT id FROM {s}.subscriptions WHERE state = 'active' AND failing_since <= %s ORDER BY id"),
                (now - failing_for,),
            )
            ids = [row[0] for row in cur.fetchall()]
            if not ids:
                return []
            paused = pause_subscriptions(cur, self.t, ids, f"failing for {failing_for} without a successful delivery", now)
            tell_owners(cur, self.t, paused, "failing", now)
            return paused

    def purge(self, before: datetime, limit: int = 5000) -> int:
        """Forget deliveries made (or cancelled) before ``before``, their attempts, and event bodies no longer needed;
        parked ones stay until re-sent. At most ``limit`` a call, oldest first, so a purge never holds locks long."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(self.t.q(_PURGE), (before, limit))
            return cur.rowcount

    def depth(self) -> tuple[int, int]:
        """(deliveries waiting, deliveries parked)."""
        with self.pool.connection() as conn:
            waiting = conn.execute(self.t.q("SELECT COALESCE(sum(pending), 0) FROM {s}.lanes")).fetchone()[0]
            parked = conn.execute(self.t.q("SELECT count(*) FROM {s}.deliveries WHERE status = 'parked'")).fetchone()[0]
        return int(waiting), int(parked)


def _record_row(o: Outcome) -> tuple:
    answer, at = o.answer, o.at
    match o.next:
        case Delivered():
            return (o.work.delivery_id, "delivered", 0, None, answer.status, None, at, at)
        case RetryAt(at=retry_at):
            return (o.work.delivery_id, "pending", o.work.failures + 1, retry_at, answer.status, answer.error, None, at)
        case Parked(reason=reason):
            why = reason if not answer.error or answer.error in reason else f"{reason} ({answer.error})"
            return (o.work.delivery_id, "parked", o.work.failures + 1, None, answer.status, why, None, at)
    raise AssertionError(o.next)
