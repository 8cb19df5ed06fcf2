"""The team reports (funnel, response time, leaderboard) as answered by the API, built from the
aggregates the queries return. Pure: rates and rankings are computed here, not in SQL or routes."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict

from services.analytics.domain import FUNNEL_STAGES


class Report(BaseModel):
    """Field docstrings become the OpenAPI descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class StageCount(Report):
    stage: str
    reached: int
    conversion_from_previous: float | None
    """Share of the leads that reached the previous stage and also reached this one."""


class FunnelGroup(Report):
    key: str
    leads: int
    stages: list[StageCount]
    won: int
    lost: int
    win_rate: float | None
    """Won out of the leads decided (won + lost)."""
    conversion: float | None
    """Won out of all leads captured in the range."""
    avg_cycle_seconds: float | None
    """Capture → won, over the leads won."""


class FunnelReport(Report):
    from_date: date
    to_date: date
    group_by: str | None
    groups: list[FunnelGroup]


def funnel_group(key: str, reached: list[int], won: int, lost: int, avg_cycle_seconds: float | None) -> FunnelGroup:
    """``reached[k]``: leads that got at least as far as ``FUNNEL_STAGES[k]``."""
    stages = [
        StageCount(stage=stage, reached=count, conversion_from_previous=ratio(count, reached[k - 1]) if k else None)
        for k, (stage, count) in enumerate(zip(FUNNEL_STAGES, reached, strict=True))
    ]
    return FunnelGroup(
        key=key,
        leads=reached[0],
        stages=stages,
        won=won,
        lost=lost,
        win_rate=ratio(won, won + lost),
        conversion=ratio(won, reached[0]),
        avg_cycle_seconds=None if avg_cycle_seconds is None else round(avg_cycle_seconds, 3),
    )


class ResponseGroup(Report):
    key: str
    leads: int
    responded: int
    avg_seconds: float | None
    p50_seconds: float | None
    p90_seconds: float | None


class ResponseTimeReport(Report):
    from_date: date
    to_date: date
    group_by: str
    groups: list[ResponseGroup]


class RepStanding(Report):
    rank: int
    rep_id: str
    leads_owned: int
    """Distinct leads the rep owned at some moment in the range."""
    follow_ups: int
    won: int
    lost: int
    conversion: float | None
    """Won out of leads owned."""
    tasks_done: int
    tasks_on_time: int
    tasks_overdue: int
    on_time_rate: float | None


class Leaderboard(Report):
    from_date: date
    to_date: date
    reps: list[RepStanding]


def leaderboard(from_date: date, to_date: date, rows: list[dict]) -> Leaderboard:
    """Ranked by wins, then conversion, then follow-ups (ties share nothing: rep id decides)."""
    standings = [
        {
            **row,
            "conversion": ratio(row["won"], row["leads_owned"]),
            "on_time_rate": ratio(row["tasks_on_time"], row["tasks_done"]),
        }
        for row in rows
    ]
    standings.sort(key=lambda r: (-r["won"], -(r["conversion"] or 0), -r["follow_ups"], r["rep_id"]))
    return Leaderboard(
        from_date=from_date, to_date=to_date, reps=[RepStanding(rank=n, **row) for n, row in enumerate(standings, start=1)]
    )
