"""Pool time (an analyst's projection the API does not serve): each stay of a lead in the public pool.

A stay starts at capture or at a release, and ends at the next claim. Ask e.g. which sources'
leads linger in the pool, or which release reasons lead to a quick re-claim::

    SELECT entered_reason, count(*), avg(left_at - entered_at)
    FROM analytics.pool_stays WHERE left_at IS NOT NULL GROUP BY 1;
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import Cursor

from services.analytics.projections.base import Fact, Projection, in_schema
from services.analytics.projections.intervals import periods
from shared.events import LeadCaptured, LeadClaimed, LeadReleased

DDL = (
    """CREATE TABLE IF NOT EXISTS {schema}.pool_stays (
        lead_id text NOT NULL,
        entered_offset bigint NOT NULL,
        entered_at timestamptz NOT NULL,
        entered_reason text NOT NULL,
        left_at timestamptz,
        claimed_by text,
        PRIMARY KEY (lead_id, entered_offset)
    )""",
    "CREATE INDEX IF NOT EXISTS pool_stays_entered ON {schema}.pool_stays (entered_at)",
)


def _enters(fact: Fact) -> dict | None:
    match fact.payload:
        case LeadCaptured():
            return {"reason": "captured"}
        case LeadReleased(reason=reason):
            return {"reason": reason}
    return None


def _leaves(fact: Fact) -> dict | None:
    return {"rep_id": fact.payload.rep_id} if isinstance(fact.payload, LeadClaimed) else None


LEAVE = """UPDATE {schema}.pool_stays s SET left_at = l.at, claimed_by = l.rep_id
    FROM unnest(%s::text[], %s::timestamptz[], %s::text[]) AS l(lead_id, at, rep_id)
    WHERE s.lead_id = l.lead_id AND s.left_at IS NULL"""
ENTER = """INSERT INTO {schema}.pool_stays (lead_id, entered_offset, entered_at, entered_reason, left_at, claimed_by)
    SELECT * FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[], %s::text[], %s::timestamptz[], %s::text[])"""


def apply(cur: Cursor, schema: str, facts: Sequence[Fact]) -> None:
    stays, claims = periods(facts, opens=_enters, closes=_leaves, closed_by_open=lambda f: {"rep_id": None})
    if claims:
        cur.execute(
            in_schema(LEAVE, schema),
            ([c.lead_id for c in claims], [c.closed_at for c in claims], [c.closed["rep_id"] for c in claims]),
        )
    if stays:
        cur.execute(
            in_schema(ENTER, schema),
            (
                [s.lead_id for s in stays],
                [s.opened_offset for s in stays],
                [s.opened_at for s in stays],
                [s.opened["reason"] for s in stays],
                [s.closed_at for s in stays],
                [s.closed.get("rep_id") for s in stays],
            ),
        )


PROJECTION = Projection(
    name="pool_time",
    description="Each stay of a lead in the public pool: entered (capture or release reason), left (claim).",
    tables=("pool_stays",),
    ddl=DDL,
    apply=apply,
)
