"""Response time: per lead, when it was captured and when (and by whom) it was first followed up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from psycopg import Cursor

from services.analytics.projections.base import Fact, Projection, array_literal, in_schema
from shared.events import FollowUpLogged, LeadCaptured

DDL = (
    """CREATE TABLE IF NOT EXISTS {schema}.response_leads (
        lead_id text PRIMARY KEY,
        captured_at timestamptz,
        source text,
        responded_at timestamptz,
        rep_id text
    )""",
    """CREATE INDEX IF NOT EXISTS response_leads_captured ON {schema}.response_leads (captured_at)
        INCLUDE (source, responded_at, rep_id)""",
)


@dataclass(frozen=True, slots=True)
class ResponseLead:
    lead_id: str
    captured_at: datetime | None = None
    source: str | None = None
    responded_at: datetime | None = None
    rep_id: str | None = None


def merge(old: ResponseLead, new: ResponseLead) -> ResponseLead:
    """The capture may be restated (a replay); the first response is never replaced."""
    first = old if old.responded_at is not None else new
    return ResponseLead(
        lead_id=old.lead_id,
        captured_at=new.captured_at or old.captured_at,
        source=new.source or old.source,
        responded_at=first.responded_at,
        rep_id=first.rep_id,
    )


def changes(facts: Sequence[Fact]) -> list[ResponseLead]:
    rows: dict[str, ResponseLead] = {}
    for fact in facts:
        match fact.payload:
            case LeadCaptured(source=source):
                step = ResponseLead(fact.lead_id, captured_at=fact.time, source=source)
            case FollowUpLogged(rep_id=rep_id):
                step = ResponseLead(fact.lead_id, responded_at=fact.time, rep_id=rep_id)
            case _:
                continue
        rows[fact.lead_id] = merge(rows[fact.lead_id], step) if fact.lead_id in rows else step
    return list(rows.values())


COLUMNS = tuple(f.name for f in fields(ResponseLead))
UPSERT = """INSERT INTO {schema}.response_leads AS t (lead_id, captured_at, source, responded_at, rep_id)
    SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::timestamptz[], %s::text[])
    ON CONFLICT (lead_id) DO UPDATE SET
        captured_at = coalesce(EXCLUDED.captured_at, t.captured_at),
        source = coalesce(EXCLUDED.source, t.source),
        responded_at = coalesce(t.responded_at, EXCLUDED.responded_at),
        rep_id = CASE WHEN t.responded_at IS NULL THEN EXCLUDED.rep_id ELSE t.rep_id END"""


def apply(cur: Cursor, schema: str, facts: Sequence[Fact]) -> None:
    rows = changes(facts)
    if rows:
        cur.execute(in_schema(UPSERT, schema), [array_literal(getattr(row, column) for row in rows) for column in COLUMNS])


PROJECTION = Projection(
    name="response_time",
    description="Per lead: capture time and source, first follow-up time and rep (GET /response-time).",
    tables=("response_leads",),
    ddl=DDL,
    apply=apply,
)
