"""The task board: followup's read model of tasks (and of pending recycle reminders) in PostgreSQL.

It is maintained from followup's own notification log by :class:`TaskBoardProjector`; each batch of
changes and the log position it reaches are written in one transaction, under a row lock, so a
change is applied exactly once even with several replicas. A stored event the board cannot take is
parked (:mod:`shared.projector`); re-driving it rebuilds its lead's tasks and reminder from the lead's
events up to the board's position. ``GET /tasks`` and the scheduler read it;
nothing here loads an aggregate. The scheduler's query touches only open tasks that are due
(a range of the ``(status, due_at)`` index).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Notification
from psycopg import Connection, sql
from psycopg.rows import dict_row

from services.followup.app import FollowupApplication
from services.followup.projections import (
    Change,
    ReminderDue,
    TaskAdded,
    TaskCancelled,
    TaskDone,
    TaskOverdue,
    changes_for,
    projected,
)
from shared.deadletters import DeadLetter, DeadLetterTable, Entry, error_text
from shared.deadletters.parking import transient
from shared.eventstore import read_model_pool
from shared.follow import FollowLoop
from shared.positions import LOG, Positions
from shared.projector import StoredEventParking
from shared.supervisor import WorkerHealth

log = logging.getLogger(__name__)

# How often the projector looks for parked events someone asked to re-drive.
REDRIVE_INTERVAL = 2.0  # seconds

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.task_board (
    task_id text PRIMARY KEY,
    lead_id text NOT NULL,
    rep_id text NOT NULL,
    kind text NOT NULL,
    title text NOT NULL,
    due_at timestamptz NOT NULL,
    scheduled_at timestamptz NOT NULL,
    status text NOT NULL,
    escalated_to text,
    overdue_at timestamptz,
    completed_at timestamptz,
    on_time boolean,
    follow_up_id text,
    cancelled_at timestamptz,
    cancel_reason text
);
CREATE INDEX IF NOT EXISTS task_board_rep_status_due ON {s}.task_board (rep_id, status, due_at);
CREATE INDEX IF NOT EXISTS task_board_status_due ON {s}.task_board (status, due_at);
CREATE INDEX IF NOT EXISTS task_board_lead ON {s}.task_board (lead_id, due_at);
CREATE INDEX IF NOT EXISTS task_board_escalated ON {s}.task_board (escalated_to, due_at) WHERE escalated_to IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.recycle_reminders (lead_id text PRIMARY KEY, remind_at timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS recycle_reminders_due ON {s}.recycle_reminders (remind_at);
CREATE TABLE IF NOT EXISTS {s}.task_board_position (
    id int PRIMARY KEY CHECK (id = 1),
    notification_id bigint NOT NULL
);
INSERT INTO {s}.task_board_position (id, notification_id) VALUES (1, 0) ON CONFLICT DO NOTHING;
"""

_APPLY: dict[type, str] = {
    TaskAdded: "INSERT INTO {s}.task_board (task_id, lead_id, rep_id, kind, title, due_at, scheduled_at, status)"
    " VALUES (%(task_id)s, %(lead_id)s, %(rep_id)s, %(kind)s, %(title)s, %(due_at)s, %(scheduled_at)s, 'open')",
    TaskDone: "UPDATE {s}.task_board SET status = 'done', completed_at = %(at)s, on_time = %(on_time)s,"
    " follow_up_id = %(follow_up_id)s WHERE task_id = %(task_id)s",
    TaskOverdue: "UPDATE {s}.task_board SET status = 'overdue', overdue_at = %(at)s, escalated_to = %(escalated_to)s"
    " WHERE task_id = %(task_id)s",
    TaskCancelled: "UPDATE {s}.task_board SET status = 'cancelled', cancelled_at = %(at)s, cancel_reason = %(reason)s"
    " WHERE task_id = %(task_id)s",
}
_REMINDER_SET = (
    "INSERT INTO {s}.recycle_reminders (lead_id, remind_at) VALUES (%(lead_id)s, %(remind_at)s)"
    " ON CONFLICT (lead_id) DO UPDATE SET remind_at = EXCLUDED.remind_at"
)
_REMINDER_CLEARED = "DELETE FROM {s}.recycle_reminders WHERE lead_id = %(lead_id)s"
_POSITION_PAST = (
    "UPDATE {s}.task_board_position SET notification_id = GREATEST(notification_id, %s) WHERE id = 1 RETURNING notification_id"
)


@dataclass(frozen=True)
class TaskQuery:
    rep_id: str | None = None
    status: str | None = None
    due_before: datetime | None = None
    lead_id: str | None = None
    escalated_to: str | None = None
    limit: int = 100
    offset: int = 0


class TaskBoard:
    def __init__(self, database_url: str, schema: str, pool_size: int = 4) -> None:
        self.schema = sql.Identifier(schema)
        self.pool = read_model_pool(database_url, pool_size, row_factory=dict_row)
        self.pool.open()
        self.dead_letters = DeadLetterTable(schema)

    def _q(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(s=self.schema)

    def ensure_tables(self) -> None:
        with self.pool.connection() as conn:
            conn.execute(self._q(_DDL))
            self.dead_letters.create(conn)  # the event store creates it too; whichever comes first

    def close(self) -> None:
        self.pool.close()

    def position(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(self._q("SELECT notification_id FROM {s}.task_board_position WHERE id = 1")).fetchone()
        return row["notification_id"] if row else 0

    def apply(self, batch: Sequence[tuple[int, list[Change]]]) -> int:
        """Apply (notification id, changes) pairs past the stored position, and the new position; one transaction.
        Returns the stored position after it (past this batch, or further if another replica got there first)."""
        if not batch:
            return self.position()
        if not any(changes for _, changes in batch):  # only the position moves: one statement, never backwards
            with self.pool.connection() as conn:
                row = conn.execute(self._q(_POSITION_PAST), (batch[-1][0],)).fetchone()
            return row["notification_id"]
        with self.pool.connection() as conn, conn.transaction():
            position = self._lock_position(conn)
            self._write(conn, [change for notification_id, changes in batch if notification_id > position for change in changes])
            last = max(position, batch[-1][0])
            self._move_to(conn, last)
        return last

    def park(self, letter: DeadLetter, notification_id: int) -> tuple[int, bool]:
        """Record a parked stored event and move the position past it, atomically. Returns the stored
        position after it, and whether the letter was recorded (not when the position was past it already)."""
        with self.pool.connection() as conn, conn.transaction():
            position = self._lock_position(conn)
            if position >= notification_id:
                return position, False
            with conn.cursor() as cur:
                self.dead_letters.insert(cur, [letter])
            self._move_to(conn, notification_id)
        return notification_id, True

    def rebuild(self, lead_id: str, changes: list[Change], up_to: int, entry_id: int) -> bool:
        """Replace the lead's tasks and reminder by ``changes`` (those of all its events up to position
        ``up_to``, in order) and resolve the re-driven entry, atomically; False (nothing written) when the
        position moved on meanwhile (the next look tries again) or the entry is no longer waiting."""
        with self.pool.connection() as conn, conn.transaction():
            if self._lock_position(conn) != up_to:
                return False
            with conn.cursor() as cur:
                if not self.dead_letters.resolve(cur, entry_id):
                    return False
            conn.execute(self._q("DELETE FROM {s}.task_board WHERE lead_id = %s"), (lead_id,))
            conn.execute(self._q("DELETE FROM {s}.recycle_reminders WHERE lead_id = %s"), (lead_id,))
            self._write(conn, changes)
        return True

    def requested(self, worker: str) -> list[Entry]:
        with self.pool.connection() as conn:
            return self.dead_letters.requested(conn, worker)

    def refuse(self, entry: Entry, error: str) -> None:
        with self.pool.connection() as conn:
            self.dead_letters.refuse(conn, entry.id, error)

    def _lock_position(self, conn: Connection) -> int:
        row = conn.execute(self._q("SELECT notification_id FROM {s}.task_board_position WHERE id = 1 FOR UPDATE")).fetchone()
        return row["notification_id"]

    def _move_to(self, conn: Connection, position: int) -> None:
        conn.execute(self._q("UPDATE {s}.task_board_position SET notification_id = %s WHERE id = 1"), (position,))

    def _write(self, conn: Connection, changes: list[Change]) -> None:
        runs: list[tuple[str, list[dict[str, Any]]]] = []  # consecutive changes of one statement, in order
        for change in changes:
            template, params = self._statement(change)
            if runs and runs[-1][0] is template:
                runs[-1][1].append(params)
            else:
                runs.append((template, [params]))
        with conn.cursor() as cur:
            for template, params_list in runs:
                cur.executemany(self._q(template), params_list)  # pipelined: one round trip per run

    @staticmethod
    def _statement(change: Change) -> tuple[str, dict[str, Any]]:
        params = dict(change.__dict__)
        if isinstance(change, ReminderDue):
            return (_REMINDER_CLEARED if change.remind_at is None else _REMINDER_SET), params
        return _APPLY[type(change)], params

    # -- queries ----------------------------------------------------------------------------------

    def tasks(self, query: TaskQuery) -> list[dict[str, Any]]:
        where, params = [], {}
        for column in ("rep_id", "status", "lead_id", "escalated_to"):
            value = getattr(query, column)
            if value is not None:
                where.append(sql.SQL("{} = %({})s").format(sql.Identifier(column), sql.SQL(column)))
                params[column] = value
        if query.due_before is not None:
            where.append(sql.SQL("due_at < %(due_before)s"))
            params["due_before"] = query.due_before
        filters = (sql.SQL("WHERE ") + sql.SQL(" AND ").join(where)) if where else sql.SQL("")
        statement = sql.SQL(
            "SELECT * FROM {s}.task_board {filters} ORDER BY due_at, task_id LIMIT %(limit)s OFFSET %(offset)s"
        ).format(s=self.schema, filters=filters)
        with self.pool.connection() as conn:
            return conn.execute(statement, {**params, "limit": query.limit, "offset": query.offset}).fetchall()

    def task(self, task_id: str) -> dict[str, Any] | None:
        with self.pool.connection() as conn:
            return conn.execute(self._q("SELECT * FROM {s}.task_board WHERE task_id = %s"), (task_id,)).fetchone()

    def due_open_tasks(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(lead_id, task_id) of open tasks due by ``now``, oldest first (one range of the (status, due_at) index)."""
        statement = "SELECT lead_id, task_id FROM {s}.task_board WHERE status = 'open' AND due_at <= %s ORDER BY due_at LIMIT %s"
        with self.pool.connection() as conn:
            rows = conn.execute(self._q(statement), (now, limit)).fetchall()
        return [(row["lead_id"], row["task_id"]) for row in rows]

    def due_reminders(self, now: datetime, limit: int) -> list[str]:
        statement = "SELECT lead_id FROM {s}.recycle_reminders WHERE remind_at <= %s ORDER BY remind_at LIMIT %s"
        with self.pool.connection() as conn:
            return [row["lead_id"] for row in conn.execute(self._q(statement), (now, limit)).fetchall()]


class TaskBoardProjector:
    """Follows followup's notification log into the task board; woken by :meth:`nudge` after each save."""

    def __init__(
        self,
        app: FollowupApplication,
        board: TaskBoard,
        batch_size: int = 1000,
        poll_interval: float = 0.2,
        health: WorkerHealth | None = None,
        parking: StoredEventParking | None = None,
        positions: Positions | None = None,
    ) -> None:
        """``parking``: where stored events the board cannot take go (the service always gives one);
        None: such a failure raises (in-process tools and tests). ``positions``: where it reports how far
        the board is (task lists wait on it to read their own writes)."""
        self.app = app
        self.board = board
        self.batch_size = batch_size
        self.follow = FollowLoop(poll_interval, health)
        self.parking = parking
        self._redrive_at = 0.0
        self.positions = positions or Positions()
        # Where to read on from: the stored position as of this projector's last look (read first when None).
        # Only a hint: the board skips, under its position lock, whatever another replica applied meanwhile.
        self.position: int | None = None

    def nudge(self) -> None:
        self.follow.nudge()

    def stop(self) -> None:
        self.follow.stop()

    def project_once(self) -> int:
        """Project the next batch of the log (blocking); returns how many notifications it covered."""
        if self.position is None:
            self.position = self.board.position()
        notifications = self.app.recorder.select_notifications(self.position + 1, self.batch_size)
        if not notifications:
            return 0
        if self.parking is None:
            return self._apply(notifications, 0, len(notifications))
        return self.parking.apply(notifications, lambda lo, hi: self._apply(notifications, lo, hi), self._park)

    def _apply(self, notifications: list[Notification], lo: int, hi: int) -> int:
        to_domain_event = self.app.mapper.to_domain_event
        batch = [(n.id, changes_for(to_domain_event(n)) if projected(n.topic) else []) for n in notifications[lo:hi]]
        self.position = self.board.apply(batch)
        return len(batch)

    def _park(self, letter: DeadLetter, notification: Notification) -> bool:
        self.position, recorded = self.board.park(letter, notification.id)
        return recorded

    def redrive_requested(self) -> int:
        """Rebuild the tasks of each lead whose parked event someone asked to re-drive (blocking); how many."""
        if self.parking is None:
            return 0
        done = 0
        for entry in self.board.requested(self.parking.worker):
            lead_id = (entry.key or b"").decode()
            try:
                up_to = self.board.position()
                to_domain_event = self.app.mapper.to_domain_event
                notifications = self.parking.lead_notifications(lead_id, up_to)
                changes = [c for n in notifications if projected(n.topic) for c in changes_for(to_domain_event(n))]
                done += self.board.rebuild(lead_id, changes, up_to, entry.id)
            except Exception as exc:
                if transient(exc):
                    raise
                self.board.refuse(entry, error_text(exc))
                log.warning("re-drive failed; parked again", extra={"entry": entry.id, "lead_id": lead_id, "error": str(exc)})
        return done

    def catch_up(self) -> None:
        while self.project_once():
            pass

    async def _step(self) -> int:
        if time.monotonic() >= self._redrive_at:
            self._redrive_at = time.monotonic() + REDRIVE_INTERVAL
            await asyncio.to_thread(self.redrive_requested)
        projected = await asyncio.to_thread(self.project_once)
        if self.position is not None:
            self.positions.reached(LOG, self.position)
        return projected

    async def run(self) -> None:
        if self.parking is not None:
            self.parking.bind(asyncio.get_running_loop())
        try:
            await self.follow.run(self._step)
        finally:
            if self.parking is not None:
                await self.parking.close()
