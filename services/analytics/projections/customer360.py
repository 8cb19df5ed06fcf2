"""Customer 360: every event of every lead, kept in topic order, folded into the view on request.

Storing the events (not a current-state row) is what lets ``as_of`` answer from history: the view
at any moment is the fold of the events up to it (:func:`services.analytics.domain.fold_customer`).
Writes are a plain COPY, the cheapest thing a replay can do; ``data`` is ``json`` (kept as text),
not ``jsonb``: it is only ever read back whole, and parsing it into jsonb was a third of
PostgreSQL's cost per stored event. Erasure scrubs the stored events.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from psycopg import Cursor

from services.analytics.domain import ERASED
from services.analytics.projections.base import Fact, Projection, in_schema

DDL = (
    """CREATE TABLE IF NOT EXISTS {schema}.customer_events (
        lead_id text NOT NULL,
        partition int NOT NULL,
        "offset" bigint NOT NULL,
        event_id text NOT NULL,
        type text NOT NULL,
        schemaversion int NOT NULL,
        time timestamptz NOT NULL,
        envelope json NOT NULL,
        PRIMARY KEY (lead_id, partition, "offset")
    )""",
)

COPY = 'COPY {schema}.customer_events (lead_id, partition, "offset", event_id, type, schemaversion, time, envelope) FROM STDIN'

# What erasure leaves of the events that carried personal data (the payloads stay valid).
SCRUBBED = {
    "LeadCaptured": {
        "name": ERASED,
        "phone": ERASED,
        "email": None,
        "wechat": None,
        "title": None,
        "needs": None,
        "contacts": [],
    },
    "FollowUpLogged": {"summary": ERASED, "pain_points": None, "objections": None, "next_step": None},
}
SCRUB = """UPDATE {schema}.customer_events
    SET envelope = jsonb_set(envelope::jsonb, '{{data}}', (envelope::jsonb -> 'data') || %s::jsonb)
    WHERE lead_id = ANY(%s) AND type = %s"""


# COPY's text format escapes backslash, tab, newline and carriage return; everything else is verbatim.
# Writing the lines ourselves costs a fraction of adapting every value (this is the replay's hot path).
COPY_CHUNK = 200


def _escape(text: str) -> str:
    # ``in`` scans and ``replace`` run at C speed; JSON text always has backslashes, rarely the others.
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def copy_line(fact: Fact) -> str:
    """One ``customer_events`` row in COPY text format; the event is stored as published."""
    lead, event_id, kind = _escape(fact.lead_id), _escape(fact.event_id), _escape(fact.type)
    record = _escape(fact.record)
    return f"{lead}\t{fact.partition}\t{fact.offset}\t{event_id}\t{kind}\t{fact.version}\t{fact.time.isoformat()}\t{record}\n"


def apply(cur: Cursor, schema: str, facts: Sequence[Fact]) -> None:
    with cur.copy(in_schema(COPY, schema)) as copy:
        # In chunks, so the server parses and indexes one chunk while the next is formatted.
        for start in range(0, len(facts), COPY_CHUNK):
            copy.write("".join(map(copy_line, facts[start : start + COPY_CHUNK])))
    erased = [fact.lead_id for fact in facts if fact.type == "PersonalDataErased"]
    if erased:
        for event_type, scrubbed in SCRUBBED.items():
            cur.execute(in_schema(SCRUB, schema), (orjson.dumps(scrubbed).decode(), erased, event_type))


PROJECTION = Projection(
    name="customer360",
    description="Every event per lead in topic order; GET /customers/{id} folds them (also as_of).",
    tables=("customer_events",),
    ddl=DDL,
    apply=apply,
)
