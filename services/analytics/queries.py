"""The read side's SQL, against the serving views. Every query is bounded by an index:
a lead id (customer events), a capture-date range (funnel, response time), a day range (leaderboard)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from services.analytics.domain import FUNNEL_STAGES
from services.analytics.projections.base import in_schema
from shared.events import Payload, validate_payload

FUNNEL_KEYS = {"source": "source", "rep": "rep_id", "region": "region", "industry": "industry"}
RESPONSE_KEYS = {"source": "source", "rep": "rep_id"}
NO_VALUE = "(none)"

_REACHED = ", ".join(f"count(*) FILTER (WHERE max_stage >= {rank}) AS reached_{rank}" for rank in range(len(FUNNEL_STAGES)))


class StoredEvent:
    """A ``customer_events`` row read back, upcast and validated, for the fold."""

    __slots__ = ("payload", "time")

    def __init__(self, event_type: str, version: int, time: datetime, data: dict[str, Any]) -> None:
        self.time = time
        self.payload: Payload = validate_payload(event_type, version, data)


def _key(column: str | None) -> str:
    return f"coalesce({column}, '{NO_VALUE}')" if column else "'all'"


class Queries:
    def __init__(self, pool: ConnectionPool, schema: str) -> None:
        self.pool = pool
        self.schema = schema

    def _all(self, template: str, params: Any) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(in_schema(template, self.schema), params)
            return cur.fetchall()

    def customer_events(self, lead_id: str) -> list[StoredEvent]:
        """The lead's events in topic order (one lead lives in one partition)."""
        rows = self._all(
            """SELECT type, schemaversion, time, envelope -> 'data' AS data FROM {schema}.customer_events
            WHERE lead_id = %s ORDER BY partition, "offset" """,
            (lead_id,),
        )
        return [StoredEvent(r["type"], r["schemaversion"], r["time"], r["data"]) for r in rows]

    def funnel(self, start: datetime, end: datetime, group_by: str | None) -> list[dict[str, Any]]:
        column = FUNNEL_KEYS[group_by] if group_by else None
        return self._all(
            f"""SELECT {_key(column)} AS key, {_REACHED}, count(won_at) AS won, count(lost_at) AS lost,
                avg(extract(epoch FROM won_at - captured_at))::float8 AS avg_cycle_seconds
            FROM {{schema}}.funnel_leads WHERE captured_at >= %s AND captured_at < %s GROUP BY 1 ORDER BY 1""",
            (start, end),
        )

    def response_time(self, start: datetime, end: datetime, group_by: str) -> list[dict[str, Any]]:
        column = RESPONSE_KEYS[group_by]
        return self._all(
            f"""SELECT {_key(column)} AS key, count(*) AS leads, count(responded_at) AS responded,
                avg(s)::float8 AS avg_seconds,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50_seconds,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY s) AS p90_seconds
            FROM (SELECT *, extract(epoch FROM responded_at - captured_at)::float8 AS s FROM {{schema}}.response_leads
                  WHERE captured_at >= %s AND captured_at < %s) r
            GROUP BY 1 ORDER BY 1""",
            (start, end),
        )

    def leaderboard(self, first_day: date, last_day: date, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return self._all(
            """WITH owned AS (
                SELECT rep_id, count(DISTINCT lead_id) AS leads_owned FROM (
                    SELECT rep_id, lead_id FROM {schema}.ownerships WHERE released_at IS NULL AND claimed_at < %(end)s
                    UNION ALL
                    SELECT rep_id, lead_id FROM {schema}.ownerships WHERE released_at >= %(start)s AND claimed_at < %(end)s
                ) periods GROUP BY rep_id
            ), activity AS (
                SELECT rep_id, sum(follow_ups) AS follow_ups, sum(won) AS won, sum(lost) AS lost, sum(tasks_done) AS tasks_done,
                    sum(tasks_on_time) AS tasks_on_time, sum(tasks_overdue) AS tasks_overdue
                FROM {schema}.rep_daily WHERE day BETWEEN %(first)s AND %(last)s GROUP BY rep_id
            )
            SELECT rep_id, coalesce(leads_owned, 0)::int AS leads_owned, coalesce(follow_ups, 0)::int AS follow_ups,
                coalesce(won, 0)::int AS won, coalesce(lost, 0)::int AS lost, coalesce(tasks_done, 0)::int AS tasks_done,
                coalesce(tasks_on_time, 0)::int AS tasks_on_time, coalesce(tasks_overdue, 0)::int AS tasks_overdue
            FROM owned FULL JOIN activity USING (rep_id)""",
            {"start": start, "end": end, "first": first_day, "last": last_day},
        )
