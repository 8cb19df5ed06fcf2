"""analytics' HTTP API: translate query parameters, call the read side, map outcomes to responses."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from services.analytics.domain import Customer360, fold_customer, may_view
from services.analytics.queries import Queries
from services.analytics.reports import FunnelReport, Leaderboard, ResponseGroup, ResponseTimeReport, funnel_group, leaderboard
from shared.auth import Principal, require_roles
from shared.catchup import CatchUp, not_yet_seen
from shared.problems import Problem, validation_problem
from shared.service import Now

router = APIRouter()

Reader = Annotated[Principal, require_roles("rep", "manager", "admin", "integration")]
# Team reports: managers, admins and integrations (BI tools); reps see their own leads only.
ReportReader = Annotated[Principal, require_roles("manager", "admin", "integration")]
DEFAULT_RANGE_DAYS = 30


def queries(request: Request) -> Queries:
    return request.app.state.queries


Read = Annotated[Queries, Depends(queries)]
FromDate = Annotated[
    date | None, Query(alias="from", description="First capture day (UTC, inclusive); default: 30 days before `to`.")
]
ToDate = Annotated[date | None, Query(alias="to", description="Last capture day (UTC, inclusive); default: today.")]


def day_range(from_date: date | None, to_date: date | None, today: date) -> tuple[date, date]:
    to_date = to_date or today
    from_date = from_date or to_date - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if from_date > to_date:
        raise validation_problem([{"field": "from", "message": "must not be after `to`"}])
    return from_date, to_date


def bounds(from_date: date, to_date: date) -> tuple[datetime, datetime]:
    """The instants [start, end) covering the days from ``from_date`` to ``to_date`` inclusive, in UTC."""
    return datetime.combine(from_date, time(), UTC), datetime.combine(to_date + timedelta(days=1), time(), UTC)


@router.get(
    "/customers/{lead_id}", response_model=Customer360, summary="Customer 360 view, now or as of a moment", tags=["customers"]
)
async def customer(
    lead_id: UUID,
    read: Read,
    principal: Reader,
    request: Request,
    now: Now,
    as_of: Annotated[datetime | None, Query(description="RFC 3339 with offset: the view as it stood then.")] = None,
    settle: Annotated[
        bool,
        Query(
            description="Wait (the catch-up grace, 500 ms) for what other services recorded just before this request,"
            " so a person who acted and then looks sees what they did; false answers at once with what analytics"
            " has applied (to the end of the lead's partition as of the request)."
        ),
    ] = True,
) -> Customer360:
    if as_of is not None and as_of.tzinfo is None:
        raise validation_problem([{"field": "as_of", "message": "must carry a UTC offset, e.g. 2026-11-23T08:00:00Z"}])
    lead = str(lead_id)
    events = await run_in_threadpool(read.customer_events, lead)
    if not events:
        events = await events_once_seen(request, read, lead)
    elif as_of is None or as_of > now - request.app.state.settings.catch_up_grace:
        events = await events_settled(request, read, lead, grace=settle)
    current = fold_customer(events, lead)
    if current is None:
        raise Problem(404, "lead-not-found", f"No lead {lead_id}.")
    if not may_view(current, principal.role, principal.sub):
        raise Problem(403, "not-your-lead", "Reps see only their own leads and the public pool.")
    if as_of is None:
        return current
    past = fold_customer(events, str(lead_id), as_of)
    if past is None:
        raise Problem(404, "lead-not-yet-known", f"Nothing was known of lead {lead_id} at {as_of.isoformat()}.")
    return past


async def events_once_seen(request: Request, read: Queries, lead: str) -> list:
    """The lead's events, once analytics has consumed what was on the lead's partition when asked (and what
    arrived during the grace that follows: a capture may still be in intake's outbox); not-yet-seen if none."""
    positions = request.app.state.followers.positions_of("customer360")
    found: list = []

    async def known() -> bool:
        found[:] = await run_in_threadpool(read.customer_events, lead)
        return bool(found)

    caught_up = False
    if positions is not None:
        caught = await CatchUp.configured(positions, request.app.state.settings).until(lead, known)
        if caught.seen:
            return found
        caught_up = caught.caught_up
    detail = f"analytics has not seen lead {lead} yet (it learns of leads from the topic)."
    raise not_yet_seen(404, detail, caught_up=caught_up)


async def events_settled(request: Request, read: Queries, lead: str, *, grace: bool) -> list:
    """The lead's events once analytics has applied its partition up to the end as of the grace after now.

    The view gathers what every service recorded; what one of them answered just before this request may still
    be in its outbox (tens of milliseconds, docs/analytics.md): a view of now waits for it, so a person who
    acted and then looks sees what they did. It costs every such view the grace (a view of the past does not wait);
    without ``grace`` the view waits only until what was on the partition when asked is applied (no time when
    analytics keeps up)."""
    positions = request.app.state.followers.positions_of("customer360")
    if positions is not None:
        catch_up = CatchUp.configured(positions, request.app.state.settings)
        if not grace:
            catch_up = CatchUp(positions, timeout=catch_up.timeout, grace=0.0)
        await catch_up.settle(lead)
    return await run_in_threadpool(read.customer_events, lead)


@router.get(
    "/funnel", response_model=FunnelReport, summary="Stages reached and conversion, for a capture-date range", tags=["reports"]
)
def funnel(
    read: Read,
    principal: ReportReader,
    now: Now,
    from_date: FromDate = None,
    to_date: ToDate = None,
    group_by: Literal["source", "rep", "region", "industry"] | None = None,
) -> FunnelReport:
    first, last = day_range(from_date, to_date, now.date())
    rows = read.funnel(*bounds(first, last), group_by)
    groups = [
        funnel_group(r["key"], [r[f"reached_{k}"] for k in range(7)], r["won"], r["lost"], r["avg_cycle_seconds"]) for r in rows
    ]
    return FunnelReport(from_date=first, to_date=last, group_by=group_by, groups=groups)


@router.get(
    "/response-time", response_model=ResponseTimeReport, summary="Capture → first follow-up: avg, p50, p90", tags=["reports"]
)
def response_time(
    read: Read,
    principal: ReportReader,
    now: Now,
    group_by: Literal["rep", "source"] = "rep",
    from_date: FromDate = None,
    to_date: ToDate = None,
) -> ResponseTimeReport:
    first, last = day_range(from_date, to_date, now.date())
    rows = read.response_time(*bounds(first, last), group_by)
    return ResponseTimeReport(from_date=first, to_date=last, group_by=group_by, groups=[ResponseGroup(**r) for r in rows])


@router.get(
    "/leaderboard",
    response_model=Leaderboard,
    summary="Per rep: leads owned, follow-ups, won, conversion, tasks",
    tags=["reports"],
)
def get_leaderboard(
    read: Read, principal: ReportReader, now: Now, from_date: FromDate = None, to_date: ToDate = None
) -> Leaderboard:
    first, last = day_range(from_date, to_date, now.date())
    return leaderboard(first, last, read.leaderboard(first, last, *bounds(first, last)))
