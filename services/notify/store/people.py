"""People's side: the directory as notify learnt it, preferences, notices, their sends per channel, the feed,
reminders and digests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from services.notify.domain.notices import Lead, Notice, Person, Reminder, due_soon
from services.notify.domain.preferences import Preferences, QuietHours
from services.notify.store.tables import Tables
from services.notify.store.topic import insert_notices


@dataclass(frozen=True, slots=True)
class PendingNotice:
    id: int
    recipient: str
    kind: str
    lead_id: str | None
    params: dict[str, Any]
    event_time: datetime


@dataclass(frozen=True, slots=True)
class Send:
    """One notice on one channel, leased for one attempt."""

    id: int
    notice: PendingNotice
    channel: str
    attempts: int


@dataclass(frozen=True, slots=True)
class PlannedSend:
    notice_id: int
    recipient: str
    channel: str
    state: str  # due | digest
    not_before: datetime


@dataclass(frozen=True, slots=True)
class FeedItem:
    recipient: str
    notice_id: int
    kind: str
    lead_id: str | None
    title: str
    body: str


# One notice, its recipient (None: unknown to the directory) and their preferences → its sends and feed item.
Planner = Callable[[PendingNotice, Person | None, Preferences], tuple[list[PlannedSend], FeedItem | None]]

_NOTICE_COLUMNS = "n.id, n.recipient, n.kind, n.lead_id, n.params, n.event_time"


def _prefs_of(row: dict[str, Any] | None, defaults: Preferences) -> Preferences:
    if row is None:
        return defaults
    quiet = QuietHours(row["quiet_start"], row["quiet_end"]) if row["quiet_start"] is not None else None
    return Preferences(
        channels=tuple(row["channels"]),
        quiet_hours=quiet,
        digest=row["digest"],
        digest_at=row["digest_at"],
        timezone=row["timezone"],
        language=row["language"],
    )


class People:
    def __init__(self, pool: ConnectionPool, tables: Tables, defaults: Preferences) -> None:
        self.pool = pool
        self.t = tables
        self.defaults = defaults

    # --- directory and preferences ---

    def person(self, rep_id: str) -> Person | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                self.t.q(
                    "SELECT rep_id, display_name, role, team, manager, email, phone, active FROM {s}.people WHERE rep_id = %s"
                ),
                (rep_id,),
            ).fetchone()
        return Person(*row) if row else None

    def directory(self) -> list[Person]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                self.t.q("SELECT rep_id, display_name, role, team, manager, email, phone, active FROM {s}.people ORDER BY rep_id")
            ).fetchall()
        return [Person(*row) for row in rows]

    def preferences(self, rep_id: str) -> tuple[Preferences, bool]:
        """The person's preferences, and whether they set them (False: the defaults)."""
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self.t.q("SELECT * FROM {s}.preferences WHERE rep_id = %s"), (rep_id,))
            row = cur.fetchone()
        return _prefs_of(row, self.defaults), row is not None

    def set_preferences(self, rep_id: str, prefs: Preferences, now: datetime) -> None:
        quiet = prefs.quiet_hours
        with self.pool.connection() as conn:
            conn.execute(
                self.t.q(
                    "INSERT INTO {s}.preferences (rep_id, channels, quiet_start, quiet_end, digest, digest_at, timezone,"
                    " language,"
                    " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (rep_id) DO UPDATE SET"
                    " channels = EXCLUDED.channels, quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end,"
                    " digest = EXCLUDED.digest, digest_at = EXCLUDED.digest_at, timezone = EXCLUDED.timezone,"
                    " language = EXCLUDED.language, updated_at = EXCLUDED.updated_at"
                ),
                (
                    rep_id,
                    list(prefs.channels),
                    quiet.start if quiet else None,
                    quiet.end if quiet else None,
                    prefs.digest,
                    prefs.digest_at,
                    prefs.timezone,
                    prefs.language,
                    now,
                ),
            )

    def lead(self, lead_id: str) -> Lead | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                self.t.q("SELECT name, grade, score, company FROM {s}.leads WHERE lead_id = %s"), (lead_id,)
            ).fetchone()
        return Lead(*row) if row else None

    # --- planning: a new notice becomes sends per channel (and a feed item) ---

    def plan_new(self, now: datetime, limit: int, plan: Planner) -> int:
        """Turn up to ``limit`` new notices into sends per channel and feed items, as ``plan`` decides for each
        (given its recipient as the directory knows them, or None, and their preferences); one transaction."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q(
                    f"SELECT {_NOTICE_COLUMNS} FROM {{s}}.notices n WHERE n.state = 'new' ORDER BY n.id LIMIT %s FOR UPDATE"
                    " SKIP LOCKED"
                ),
                (limit,),
            )
            notices = [PendingNotice(*row) for row in cur.fetchall()]
            if not notices:
                return 0
            recipients = sorted({n.recipient for n in notices})
            cur.execute(
                self.t.q(
                    "SELECT rep_id, display_name, role, team, manager, email, phone, active FROM {s}.people WHERE rep_id ="
                    " ANY(%s)"
                ),
                (recipients,),
            )
            people = {row[0]: Person(*row) for row in cur.fetchall()}
            with conn.cursor(row_factory=dict_row) as dict_cur:
                dict_cur.execute(self.t.q("SELECT * FROM {s}.preferences WHERE rep_id = ANY(%s)"), (recipients,))
                prefs = {row["rep_id"]: _prefs_of(row, self.defaults) for row in dict_cur.fetchall()}
            sends: list[PlannedSend] = []
            feed: list[FeedItem] = []
            for notice in notices:
                planned, item = plan(notice, people.get(notice.recipient), prefs.get(notice.recipient, self.defaults))
                sends.extend(planned)
                if item is not None:
                    feed.append(item)
            if sends:
                cur.executemany(
                    self.t.q(
                        "INSERT INTO {s}.sends (notice_id, recipient, channel, state, not_before, created_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (notice_id, channel) DO NOTHING"
                    ),
                    [(s.notice_id, s.recipient, s.channel, s.state, s.not_before, now) for s in sends],
                )
            if feed:
                cur.executemany(
                    self.t.q(
                        "INSERT INTO {s}.feed (recipient, notice_id, kind, lead_id, title, body, created_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (notice_id) DO NOTHING"
                    ),
                    [(f.recipient, f.notice_id, f.kind, f.lead_id, f.title, f.body, now) for f in feed],
                )
            cur.execute(self.t.q("UPDATE {s}.notices SET state = 'planned' WHERE id = ANY(%s)"), ([n.id for n in notices],))
            return len(notices)

    # --- sending ---

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[Send]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q(
                    "SELECT s.id, s.channel, s.attempts, " + _NOTICE_COLUMNS + " FROM {s}.sends s JOIN {s}.notices n"
                    " ON n.id = s.notice_id WHERE s.state = 'due' AND s.not_before <= %s ORDER BY s.not_before LIMIT %s"
                    " FOR UPDATE OF s SKIP LOCKED"
                ),
                (now, limit),
            )
            rows = cur.fetchall()
            if rows:
                cur.execute(
                    self.t.q("UPDATE {s}.sends SET not_before = %s WHERE id = ANY(%s)"), (now + lease, [r[0] for r in rows])
                )
        return [Send(row[0], PendingNotice(*row[3:]), row[1], row[2]) for row in rows]

    def finished(self, results: Sequence[tuple[Send, str, datetime | None, str | None]], now: datetime) -> None:
        """(send, state ``sent`` | ``due`` (again, at the time given) | ``failed`` | ``skipped``, when, error)."""
        if not results:
            return
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.executemany(
                self.t.q(
                    "UPDATE {s}.sends SET state = %s, attempts = attempts + 1, not_before = COALESCE(%s, not_before),"
                    " sent_at = CASE WHEN %s = 'sent' THEN %s::timestamptz END, last_error = %s WHERE id = %s"
                ),
                [(state, at, state, now, error, send.id) for send, state, at, error in results],
            )

    # --- the feed ---

    def feed(self, recipient: str, after: int, limit: int) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                self.t.q(
                    "SELECT id, kind, lead_id, title, body, created_at, read_at FROM {s}.feed WHERE recipient = %s AND id > %s"
                    " ORDER BY id LIMIT %s"
                ),
                (recipient, after, limit),
            )
            return cur.fetchall()

    def latest_feed_id(self, recipient: str) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(
                self.t.q("SELECT COALESCE(max(id), 0) FROM {s}.feed WHERE recipient = %s"), (recipient,)
            ).fetchone()
        return row[0]

    def mark_read(self, recipient: str, up_to: int, now: datetime) -> int:
        with self.pool.connection() as conn:
            cur = conn.execute(
                self.t.q("UPDATE {s}.feed SET read_at = %s WHERE recipient = %s AND id <= %s AND read_at IS NULL"),
                (now, recipient, up_to),
            )
            return cur.rowcount

    # --- the ticker's work: reminders due, digests due ---

    def raise_reminders(self, now: datetime, limit: int = 500) -> int:
        """Reminders whose time has come become notices (once each)."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q(
                    "SELECT task_id, lead_id, rep_id, title, due_at, remind_at FROM {s}.reminders WHERE state = 'waiting'"
                    " AND remind_at <= %s ORDER BY remind_at LIMIT %s FOR UPDATE SKIP LOCKED"
                ),
                (now, limit),
            )
            reminders = [Reminder(*row) for row in cur.fetchall()]
            if not reminders:
                return 0
            notices = []
            for reminder in reminders:
                notice = due_soon(reminder, now)
                if notice is not None:
                    lead = _lead(cur, self.t, reminder.lead_id)
                    params = notice.params | {"lead_name": lead.name if lead else None}
                    notices.append(
                        (f"reminder:{reminder.task_id}", now, Notice(notice.recipient, notice.kind, notice.lead_id, params))
                    )
            insert_notices(cur, self.t, notices, now)
            cur.execute(
                self.t.q("UPDATE {s}.reminders SET state = 'sent' WHERE task_id = ANY(%s)"), ([r.task_id for r in reminders],)
            )
            return len(notices)

    def digest_waiting(self) -> list[tuple[str, datetime]]:
        """Everyone with messages waiting for their digest, and when the oldest arrived."""
        with self.pool.connection() as conn:
            return conn.execute(
                self.t.q("SELECT recipient, min(created_at) FROM {s}.sends WHERE state = 'digest' GROUP BY recipient")
            ).fetchall()

    def make_digest(self, recipient: str, now: datetime) -> int:
        """Gather the recipient's waiting messages into one digest notice (planned like any other); returns how many."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q(
                    "SELECT s.id, s.notice_id FROM {s}.sends s WHERE s.recipient = %s AND s.state = 'digest' ORDER BY s.notice_id"
                    " FOR UPDATE SKIP LOCKED"
                ),
                (recipient,),
            )
            rows = cur.fetchall()
            if not rows:
                return 0
            notice_ids = sorted({row[1] for row in rows})
            cur.execute(
                self.t.q(
                    "SELECT id, kind, lead_id, params, event_time FROM {s}.notices WHERE id = ANY(%s) ORDER BY event_time, id"
                ),
                (notice_ids,),
            )
            items = [
                {"kind": kind, "lead_id": lead_id, "params": params, "event_time": event_time.isoformat()}
                for _, kind, lead_id, params, event_time in cur.fetchall()
            ]
            digest = Notice(recipient, "digest", None, {"items": items})  # type: ignore[arg-type]
            insert_notices(cur, self.t, [(f"digest:{notice_ids[-1]}", now, digest)], now)
            cur.execute(
                self.t.q("UPDATE {s}.sends SET state = 'digested', sent_at = %s WHERE id = ANY(%s)"),
                (now, [row[0] for row in rows]),
            )
            return len(items)

    def purge(self, before: datetime, limit: int = 5000) -> int:
        """Forget notices handled before ``before``, with their sends and feed items (what still waits stays)."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q(
                    "WITH old AS (DELETE FROM {s}.notices WHERE id IN (SELECT n.id FROM {s}.notices n WHERE n.state <> 'new'"
                    " AND n.created_at < %s AND NOT EXISTS (SELECT 1 FROM {s}.sends s WHERE s.notice_id = n.id"
                    " AND s.state IN ('due', 'digest')) ORDER BY n.id LIMIT %s) RETURNING id),"
                    " sends AS (DELETE FROM {s}.sends WHERE notice_id IN (SELECT id FROM old))"
                    " DELETE FROM {s}.feed WHERE notice_id IN (SELECT id FROM old)"
                ),
                (before, limit),
            )
            return cur.rowcount

    def depth(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(
                self.t.q(
                    "SELECT (SELECT count(*) FROM {s}.notices WHERE state = 'new') + (SELECT count(*) FROM {s}.sends WHERE"
                    " state = 'due')"
                )
            ).fetchone()
        return int(row[0])


def _lead(cur: Cursor, t: Tables, lead_id: str) -> Lead | None:
    cur.execute(t.q("SELECT name, grade, score, company FROM {s}.leads WHERE lead_id = %s"), (lead_id,))
    row = cur.fetchone()
    return Lead(*row) if row else None
