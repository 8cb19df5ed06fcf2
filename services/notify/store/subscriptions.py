"""Subscriptions and their delivery log, as the API reads and changes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.notify.store.queue import lock_lanes_of, pause_subscriptions
from services.notify.store.tables import NIL_REPLAY, Tables

_COLUMNS = (
    "id, url, types, description, state, paused_reason, owner, created_at, updated_at, failing_since, last_success_at,"
    " previous_secret_until"
)
_WAITING = "(SELECT COALESCE(sum(pending), 0) FROM {s}.lanes l WHERE l.subscription_id = s.id) AS waiting"
_DELIVERY_COLUMNS = (
    "d.id, d.subscription_id, d.event_id, d.lead_key AS subject, d.type, d.event_time, d.status, d.attempts,"
    " d.created_at, d.first_attempt_at, d.last_attempt_at, d.next_attempt_at, d.last_status, d.last_error, d.delivered_at,"
    " NULLIF(d.replay_id, '" + NIL_REPLAY + "'::uuid) AS replay_id"
)


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    subscription: UUID | None = None
    status: str | None = None
    subject: str | None = None
    before: int | None = None
    limit: int = 100


class Subscriptions:
    def __init__(self, pool: ConnectionPool, tables: Tables) -> None:
        self.pool = pool
        self.t = tables

    def create(
        self, sid: UUID, url: str, types: list[str] | None, secret: str, description: str | None, owner: str, now: datetime
    ) -> dict[str, Any]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self.t.q(
                    "INSERT INTO {s}.subscriptions (id, url, types, secret, description, state, owner, created_at, updated_at)"
                    f" VALUES (%s, %s, %s, %s, %s, 'active', %s, %s, %s) RETURNING {_COLUMNS}"
                ),
                (sid, url, types, secret, description, owner, now, now),
            )
            return cur.fetchone()

    def get(self, sid: UUID) -> dict[str, Any] | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self.t.q(f"SELECT {_COLUMNS}, {_WAITING} FROM {{s}}.subscriptions s WHERE id = %s AND state <> 'deleted'"),
                (sid,),
            )
            return cur.fetchone()

    def list(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self.t.q(f"SELECT {_COLUMNS}, {_WAITING} FROM {{s}}.subscriptions s WHERE state <> 'deleted' ORDER BY created_at")
            )
            return cur.fetchall()

    def delete(self, sid: UUID, now: datetime) -> bool:
        """Stop delivering: the subscription is gone, what waited for it is cancelled (its log is kept)."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(self.t.q("SELECT 1 FROM {s}.subscriptions WHERE id = %s AND state <> 'deleted'"), (sid,))
            if cur.fetchone() is None:
                return False
            # deliveries → lanes → subscription: the order every writer locks in (see store.queue).
            cur.execute(
                self.t.q(
                    "UPDATE {s}.deliveries SET status = 'cancelled' WHERE id IN (SELECT id FROM {s}.deliveries"
                    " WHERE subscription_id = %s AND status = 'pending' ORDER BY id FOR UPDATE)"
                ),
                (sid,),
            )
            lock_lanes_of(cur, self.t, [sid])
            cur.execute(self.t.q("DELETE FROM {s}.lanes WHERE subscription_id = %s"), (sid,))
            cur.execute(
                self.t.q("UPDATE {s}.subscriptions SET state = 'deleted', updated_at = %s WHERE id = %s AND state <> 'deleted'"),
                (now, sid),
            )
            cur.execute(
                self.t.q("UPDATE {s}.replays SET state = 'cancelled' WHERE subscription_id = %s AND state = 'running'"), (sid,)
            )
            return True

    def pause(self, sid: UUID, reason: str, now: datetime) -> dict[str, Any] | None:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            pause_subscriptions(cur, self.t, [sid], reason, now)
        return self.get(sid)

    def resume(self, sid: UUID, now: datetime) -> dict[str, Any] | None:
        """Active again, its waiting lanes due now; its failure clock starts afresh."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            lock_lanes_of(cur, self.t, [sid])
            cur.execute(
                self.t.q(
                    "UPDATE {s}.subscriptions SET state = 'active', paused_reason = NULL, failing_since = NULL, updated_at = %s"
                    " WHERE id = %s AND state = 'paused'"
                ),
                (now, sid),
            )
            if cur.rowcount:
                cur.execute(self.t.q("UPDATE {s}.lanes SET next_attempt_at = %s WHERE subscription_id = %s"), (now, sid))
        return self.get(sid)

    def rotate_secret(self, sid: UUID, secret: str, keep_previous_until: datetime, now: datetime) -> dict[str, Any] | None:
        """A new signing secret; the one it replaces still signs (beside it) until ``keep_previous_until``."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q(
                    "UPDATE {s}.subscriptions SET previous_secret = secret, previous_secret_until = %s, secret = %s,"
                    " updated_at = %s WHERE id = %s AND state <> 'deleted'"
                ),
                (keep_previous_until, secret, now, sid),
            )
            if cur.rowcount == 0:
                return None
        return self.get(sid)

    def deliveries(self, query: DeliveryQuery) -> list[dict[str, Any]]:
        clauses, params = ["TRUE"], []
        for clause, value in (
            ("d.subscription_id = %s", query.subscription),
            ("d.status = %s", query.status),
            ("d.lead_key = %s", query.subject),
            ("d.id < %s", query.before),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self.t.q(
                    f"SELECT {_DELIVERY_COLUMNS} FROM {{s}}.deliveries d WHERE {' AND '.join(clauses)} ORDER BY d.id DESC"
                    " LIMIT %s"
                ),
                (*params, query.limit),
            )
            return cur.fetchall()

    def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self.t.q(f"SELECT {_DELIVERY_COLUMNS} FROM {{s}}.deliveries d WHERE d.id = %s"), (delivery_id,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                self.t.q(
                    "SELECT attempt, at, status, error, duration_ms FROM {s}.attempts WHERE delivery_id = %s ORDER BY attempt"
                ),
                (delivery_id,),
            )
            row["attempt_log"] = cur.fetchall()
            return row

    def resend(self, delivery_id: int, now: datetime) -> str:
        """Queue a parked, delivered or cancelled delivery again (first in its lane: it is the older event).
        Returns ``queued``, ``pending`` (it already waits), ``gone`` (its subscription is deleted) or ``missing``."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q(
                    "SELECT d.status, d.subscription_id, d.lead_key, s.state FROM {s}.deliveries d"
                    " JOIN {s}.subscriptions s ON s.id = d.subscription_id WHERE d.id = %s FOR UPDATE OF d"
                ),
                (delivery_id,),
            )
            row = cur.fetchone()
            if row is None:
                return "missing"
            status, sid, lead_key, state = row
            if state == "deleted":
                return "gone"
            if status == "pending":
                return "pending"
            cur.execute(
                self.t.q(
                    "UPDATE {s}.deliveries SET status = 'pending', failures = 0, first_attempt_at = NULL, next_attempt_at = NULL,"
                    " delivered_at = NULL WHERE id = %s"
                ),
                (delivery_id,),
            )
            cur.execute(
                self.t.q(
                    "INSERT INTO {s}.lanes (subscription_id, lead_key, pending, next_attempt_at) VALUES (%s, %s, 1, %s)"
                    " ON CONFLICT (subscription_id, lead_key) DO UPDATE SET pending = {s}.lanes.pending + 1"
                ),
                (sid, lead_key, now if state == "active" else datetime.max.replace(tzinfo=now.tzinfo)),
            )
            return "queued"

    # --- replays ---

    def start_replay(
        self, rid: UUID, sid: UUID, from_time: datetime, by: str, ends: dict[int, int], now: datetime
    ) -> dict[str, Any]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self.t.q(
                    "INSERT INTO {s}.replays (id, subscription_id, from_time, requested_by, requested_at, state, ends)"
                    " VALUES (%s, %s, %s, %s, %s, 'running', %s) RETURNING *"
                ),
                (rid, sid, from_time, by, now, Jsonb({str(p): o for p, o in ends.items()})),
            )
            return cur.fetchone()

    def replay(self, rid: UUID) -> dict[str, Any] | None:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self.t.q("SELECT * FROM {s}.replays WHERE id = %s"), (rid,))
            return cur.fetchone()

    def running_replays(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self.t.q(
                    "SELECT r.*, s.types FROM {s}.replays r JOIN {s}.subscriptions s ON s.id = r.subscription_id"
                    " WHERE r.state = 'running' ORDER BY r.requested_at"
                )
            )
            return cur.fetchall()
