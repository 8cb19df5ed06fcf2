"""Funnel: one row per lead with what the funnel groups by and how far the lead got.

A batch is folded into one change per lead (:func:`changes`, pure); the table merges it with
:data:`UPSERT`, which does in SQL exactly what :func:`merge` does in Python: the furthest stage
wins, the first win/loss time sticks, the latest owner replaces the previous one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from psycopg import Cursor

from services.analytics.domain import STAGE_RANK, stage_after
from services.analytics.projections.base import Fact, Projection, array_literal, in_schema
from shared.events import LeadCaptured, LeadClaimed, LeadLost, LeadWon

DDL = (
    """CREATE TABLE IF NOT EXISTS {schema}.funnel_leads (
        lead_id text PRIMARY KEY,
        captured_at timestamptz,
        source text,
        region text,
        industry text,
        rep_id text,
        max_stage smallint,
        won_at timestamptz,
        lost_at timestamptz
    )""",
    # Covering index: a capture-date range is answered by an index-only scan.
    """CREATE INDEX IF NOT EXISTS funnel_leads_captured ON {schema}.funnel_leads (captured_at)
        INCLUDE (source, region, industry, rep_id, max_stage, won_at, lost_at)""",
)


@dataclass(frozen=True, slots=True)
class FunnelLead:
    """What a batch says about one lead; None means "nothing new"."""

    lead_id: str
    captured_at: datetime | None = None
    source: str | None = None
    region: str | None = None
    industry: str | None = None
    rep_id: str | None = None
    max_stage: int | None = None
    won_at: datetime | None = None
    lost_at: datetime | None = None


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def merge(old: FunnelLead, new: FunnelLead) -> FunnelLead:
    """``old`` followed by ``new`` (the Python twin of :data:`UPSERT`)."""
    return FunnelLead(
        lead_id=old.lead_id,
        captured_at=new.captured_at or old.captured_at,
        source=new.source or old.source,
        region=new.region or old.region,
        industry=new.industry or old.industry,
        rep_id=new.rep_id or old.rep_id,
        max_stage=_max(old.max_stage, new.max_stage),
        won_at=old.won_at or new.won_at,
        lost_at=old.lost_at or new.lost_at,
    )


# Positions in the per-lead accumulator of :func:`changes` (the order of FunnelLead's fields).
_CAPTURED_AT, _SOURCE, _REGION, _INDUSTRY, _REP, _STAGE, _WON, _LOST = range(1, 9)


def changes(facts: Sequence[Fact]) -> list[FunnelLead]:
    """One change per lead touched by ``facts`` (pure): each fact merged into its lead's row as
    :func:`merge` would, on a plain list (this runs once per event of a replay)."""
    rows: dict[str, list] = {}
    for fact in facts:
        row = rows.get(fact.lead_id)
        if row is None:
            row = rows[fact.lead_id] = [fact.lead_id, None, None, None, None, None, None, None, None]
        p = fact.payload
        stage = stage_after(p, None)
        if stage is not None:
            rank = STAGE_RANK.get(stage)
            if rank is not None and (row[_STAGE] is None or rank > row[_STAGE]):
                row[_STAGE] = rank
        kind = type(p)
        if kind is LeadCaptured:
            row[_CAPTURED_AT] = fact.time
            row[_SOURCE] = p.source or row[_SOURCE]
            row[_REGION] = p.region or row[_REGION]
            row[_INDUSTRY] = p.industry or row[_INDUSTRY]
        elif kind is LeadClaimed:
            row[_REP] = p.rep_id or row[_REP]
        elif kind is LeadWon:
            row[_REP] = p.rep_id or row[_REP]
            row[_WON] = row[_WON] or fact.time
        elif kind is LeadLost:
            row[_REP] = p.rep_id or row[_REP]
            row[_LOST] = row[_LOST] or fact.time
    return [FunnelLead(*row) for row in rows.values()]


COLUMNS = tuple(f.name for f in fields(FunnelLead))
UPSERT = """INSERT INTO {schema}.funnel_leads AS t
        (lead_id, captured_at, source, region, industry, rep_id, max_stage, won_at, lost_at)
    SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[], %s::smallint[],
                         %s::timestamptz[], %s::timestamptz[])
    ON CONFLICT (lead_id) DO UPDATE SET
        captured_at = coalesce(EXCLUDED.captured_at, t.captured_at),
        source = coalesce(EXCLUDED.source, t.source),
        region = coalesce(EXCLUDED.region, t.region),
        industry = coalesce(EXCLUDED.industry, t.industry),
        rep_id = coalesce(EXCLUDED.rep_id, t.rep_id),
        max_stage = greatest(t.max_stage, EXCLUDED.max_stage),
        won_at = coalesce(t.won_at, EXCLUDED.won_at),
        lost_at = coalesce(t.lost_at, EXCLUDED.lost_at)"""


def apply(cur: Cursor, schema: str, facts: Sequence[Fact]) -> None:
    rows = changes(facts)
    if rows:
        cur.execute(in_schema(UPSERT, schema), [array_literal(getattr(row, column) for row in rows) for column in COLUMNS])


PROJECTION = Projection(
    name="funnel",
    description="Per lead: capture date, source, region, industry, owner, furthest stage, won/lost times (GET /funnel).",
    tables=("funnel_leads",),
    ddl=DDL,
    apply=apply,
)
