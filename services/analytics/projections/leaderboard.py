"""Leaderboard: who had which lead in their pipeline when (periods), and per rep and day what they did (counters).

A period ends when the lead is released, or won or lost (it leaves the rep's open pipeline then), so
the open periods are bounded by the claim limit and "leads owned in a range" is answered from the open
periods plus those ended since the range began, never from all history.

Counters are increments, so they rely on each event being applied exactly once, which the
batch tracking guarantees (positions and processed ids in the same transaction as these rows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from psycopg import Cursor

from services.analytics.projections.base import Fact, Projection, in_schema
from services.analytics.projections.intervals import Closure, Period, periods
from shared.events import FollowUpLogged, FollowUpTaskCompleted, FollowUpTaskOverdue, LeadClaimed, LeadLost, LeadReleased, LeadWon

COUNTERS = ("follow_ups", "won", "lost", "tasks_done", "tasks_on_time", "tasks_overdue")

DDL = (
    """CREATE TABLE IF NOT EXISTS {schema}.ownerships (
        lead_id text NOT NULL,
        claim_offset bigint NOT NULL,
        rep_id text NOT NULL,
        how text NOT NULL,
        claimed_at timestamptz NOT NULL,
        released_at timestamptz,
        release_reason text,
        PRIMARY KEY (lead_id, claim_offset)
    )""",
    """CREATE INDEX IF NOT EXISTS ownerships_open ON {schema}.ownerships (claimed_at) INCLUDE (rep_id, lead_id)
        WHERE released_at IS NULL""",
    "CREATE INDEX IF NOT EXISTS ownerships_ended ON {schema}.ownerships (released_at) INCLUDE (rep_id, lead_id, claimed_at)",
    """CREATE TABLE IF NOT EXISTS {schema}.rep_daily (
        rep_id text NOT NULL,
        day date NOT NULL,
        follow_ups int NOT NULL DEFAULT 0,
        won int NOT NULL DEFAULT 0,
        lost int NOT NULL DEFAULT 0,
        tasks_done int NOT NULL DEFAULT 0,
        tasks_on_time int NOT NULL DEFAULT 0,
        tasks_overdue int NOT NULL DEFAULT 0,
        PRIMARY KEY (rep_id, day)
    )""",
    "CREATE INDEX IF NOT EXISTS rep_daily_day ON {schema}.rep_daily (day) INCLUDE (rep_id)",
)


@dataclass
class LeaderboardChanges:
    ownerships: list[Period]
    releases: list[Closure]
    counters: dict[tuple[str, date], Counter[str]] = field(default_factory=dict)
    # Wins and losses that did not name the rep: credited to the lead's owner at the time.
    unattributed: list[tuple[str, date, str]] = field(default_factory=list)


def _ends_ownership(fact: Fact) -> dict | None:
    match fact.payload:
        case LeadReleased(reason=reason):
            return {"reason": reason}
        case LeadWon():
            return {"reason": "won"}
        case LeadLost():
            return {"reason": "lost"}
    return None


def changes(facts: Sequence[Fact]) -> LeaderboardChanges:
    """What a batch changes (pure)."""
    owned, released = periods(
        facts,
        opens=lambda f: {"rep_id": f.payload.rep_id, "how": f.payload.how} if isinstance(f.payload, LeadClaimed) else None,
        closes=_ends_ownership,
        closed_by_open=lambda f: {"reason": "reassigned"},
    )
    out = LeaderboardChanges(owned, released)
    owner_now: dict[str, str | None] = {}  # owners known from this batch alone
    for fact in facts:
        p, day = fact.payload, fact.time.date()
        match p:
            case LeadClaimed(rep_id=rep):
                owner_now[fact.lead_id] = rep
            case LeadReleased():
                owner_now[fact.lead_id] = None
            case FollowUpLogged(rep_id=rep):
                out.counters.setdefault((rep, day), Counter())["follow_ups"] += 1
            case FollowUpTaskCompleted(rep_id=rep, on_time=on_time, completed_at=done):
                tally = out.counters.setdefault((rep, done.date()), Counter())
                tally["tasks_done"] += 1
                tally["tasks_on_time"] += on_time
            case FollowUpTaskOverdue(rep_id=rep):
                out.counters.setdefault((rep, day), Counter())["tasks_overdue"] += 1
            case LeadWon() | LeadLost():
                result = "won" if isinstance(p, LeadWon) else "lost"
                rep = p.rep_id or owner_now.get(fact.lead_id)
                if rep is not None:
                    out.counters.setdefault((rep, day), Counter())[result] += 1
                elif fact.lead_id not in owner_now:
                    out.unattributed.append((fact.lead_id, day, result))
    return out


RELEASE = """UPDATE {schema}.ownerships o SET released_at = r.at, release_reason = r.reason
    FROM unnest(%s::text[], %s::timestamptz[], %s::text[]) AS r(lead_id, at, reason)
    WHERE o.lead_id = r.lead_id AND o.released_at IS NULL"""
CLAIM = """INSERT INTO {schema}.ownerships (lead_id, claim_offset, rep_id, how, claimed_at, released_at, release_reason)
    SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[])"""
OWNERS = "SELECT lead_id, rep_id FROM {schema}.ownerships WHERE lead_id = ANY(%s) AND released_at IS NULL"
COUNT = """INSERT INTO {schema}.rep_daily AS t (rep_id, day, follow_ups, won, lost, tasks_done, tasks_on_time, tasks_overdue)
    SELECT * FROM unnest(%s::text[], %s::date[], %s::int[], %s::int[], %s::int[], %s::int[], %s::int[], %s::int[])
    ON CONFLICT (rep_id, day) DO UPDATE SET
        follow_ups = t.follow_ups + EXCLUDED.follow_ups, won = t.won + EXCLUDED.won, lost = t.lost + EXCLUDED.lost,
        tasks_done = t.tasks_done + EXCLUDED.tasks_done, tasks_on_time = t.tasks_on_time + EXCLUDED.tasks_on_time,
        tasks_overdue = t.tasks_overdue + EXCLUDED.tasks_overdue"""


def apply(cur: Cursor, schema: str, facts: Sequence[Fact]) -> None:
    batch = changes(facts)
    if batch.unattributed:  # before this batch's writes end the owners' periods
        cur.execute(in_schema(OWNERS, schema), ([lead for lead, _, _ in batch.unattributed],))
        owners = dict(cur.fetchall())
        for lead, day, result in batch.unattributed:
            if lead in owners:
                batch.counters.setdefault((owners[lead], day), Counter())[result] += 1
    if batch.releases:
        cur.execute(
            in_schema(RELEASE, schema),
            (
                [c.lead_id for c in batch.releases],
                [c.closed_at for c in batch.releases],
                [c.closed["reason"] for c in batch.releases],
            ),
        )
    if batch.ownerships:
        rows = batch.ownerships
        cur.execute(
            in_schema(CLAIM, schema),
            (
                [p.lead_id for p in rows],
                [p.opened_offset for p in rows],
                [p.opened["rep_id"] for p in rows],
                [p.opened["how"] for p in rows],
                [p.opened_at for p in rows],
                [p.closed_at for p in rows],
                [p.closed.get("reason") for p in rows],
            ),
        )
    if batch.counters:
        keys = list(batch.counters)
        cur.execute(
            in_schema(COUNT, schema),
            ([rep for rep, _ in keys], [day for _, day in keys], *([batch.counters[k][c] for k in keys] for c in COUNTERS)),
        )


PROJECTION = Projection(
    name="leaderboard",
    description="Pipeline periods per lead and rep, and per-rep daily counters (GET /leaderboard).",
    tables=("ownerships", "rep_daily"),
    ddl=DDL,
    apply=apply,
)
