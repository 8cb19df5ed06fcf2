"""assignment's HTTP API: translate requests, call the application or the read model, map refusals."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from services.assignment import SERVICE
from services.assignment.app import AssignmentApplication, Owned
from services.assignment.domain.errors import (
    ClaimLimitReached,
    LeadAlreadyOwned,
    LeadClosed,
    LeadNotFound,
    LeadNotOwned,
    NotLeadOwner,
    ReclaimCooldown,
    RepInactive,
    RepOffboarded,
    RepUnknown,
)
from services.assignment.readmodel import InvalidCursor, Page, ReadModel
from services.assignment.turns import LeadTurns
from shared.auth import Principal, authorize, require_roles
from shared.catchup import CatchUp, NotYetSeen, OwnWrites, not_yet_seen
from shared.events import Grade
from shared.logs import correlation_id
from shared.problems import Problem, Refusals, problem_response, validation_problem
from shared.service import Now
from shared.text import SINGLE_LINE, OptionalSingleLine

router = APIRouter()

OwnerOrSupervisor = Annotated[Principal, require_roles("rep", "manager", "admin")]
Supervisor = Annotated[Principal, require_roles("manager", "admin")]
Reader = Annotated[Principal, require_roles("rep", "manager", "admin", "integration")]
RepId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S+$"), SINGLE_LINE]
RepPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^\S+$"), SINGLE_LINE]


class OwnershipOut(BaseModel):
    """Who owns the lead now."""

    lead_id: str
    rep_id: str | None = Field(description="The owner; null when the lead is in the public pool.")
    how: str | None = Field(description="report | claim | assign | auto")
    protected_until: datetime | None
    stage: str

    @classmethod
    def of(cls, owned: Owned) -> OwnershipOut:
        return cls(
            lead_id=owned.lead_id, rep_id=owned.rep_id, how=owned.how, protected_until=owned.protected_until, stage=owned.stage
        )


class ReleaseOut(BaseModel):
    lead_id: str
    rep_id: str = Field(description="The rep the lead was released from.")
    reason: str
    cooldown_until: datetime = Field(description="Until when that rep may not claim the lead again.")


class AssignIn(BaseModel):
    rep_id: RepId


class OffboardIn(BaseModel):
    transfer_to: RepId | None = Field(default=None, description="Who takes every lead; omitted: back to the pool.")


class OffboardOut(BaseModel):
    rep_id: str
    transfer_to: str | None
    moved: int
    lead_ids: list[str]


class LeadOut(BaseModel):
    """A lead as the ownership view shows it."""

    lead_id: str
    region: str | None
    industry: str | None
    grade: str
    source: str
    captured_at: datetime
    stage: str
    owner: str | None
    how: str | None
    claimed_at: datetime | None
    protected_until: datetime | None
    last_contact_at: datetime | None
    due_at: datetime | None = Field(description="When the lead returns to the pool unless followed up or won.")
    due_reason: str | None
    released_at: datetime | None


class LeadPage(BaseModel):
    items: list[LeadOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class LeadStatus(BaseModel):
    """One lead's ownership from the event store (always current), with its next deadline."""

    lead_id: str
    owner: str | None
    how: str | None
    claimed_at: datetime | None
    protected_until: datetime | None
    stage: str
    due_at: datetime | None
    due_reason: str | None
    cooldown_until: datetime | None = Field(description="The caller's own cooldown on this lead, if any.")


# The dependencies are async so that FastAPI calls them on the event loop, not in a worker thread.
async def assignment(request: Request) -> AssignmentApplication:
    return request.app.state.assignment


async def readmodel(request: Request) -> ReadModel:
    return request.app.state.readmodel


async def catch_up(request: Request) -> CatchUp:
    return request.app.state.catch_up


async def fresh_view(request: Request) -> ReadModel:
    """The read model, once it reflects every command answered so far (read your own writes)."""
    own_writes: OwnWrites = request.app.state.own_writes
    await own_writes.wait()
    return request.app.state.readmodel


App = Annotated[AssignmentApplication, Depends(assignment)]
View = Annotated[ReadModel, Depends(fresh_view)]
Upstream = Annotated[CatchUp, Depends(catch_up)]
# A lead assignment has not seen captured may only be on its way (in intake's outbox, or on the topic
# but not consumed yet): such a refusal waits for the lead's partition before it stands.
UNSEEN = (LeadNotFound,)
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page."), SINGLE_LINE]


def unseen(refused: NotYetSeen) -> Problem:
    """A lead still unknown after waiting for the lead's partition (see shared.catchup)."""
    detail = f"{refused} assignment learns of leads from the topic and has not seen this one captured yet."
    return not_yet_seen(404, detail, caught_up=refused.caught_up)


# Each refusal's status and problem type (urn:leadflow:problem:<kind>): the rule that refused.
REFUSALS = Refusals(
    SERVICE,
    {
        LeadNotFound: (404, "lead-not-found"),
        NotLeadOwner: (403, "not-lead-owner"),
        LeadAlreadyOwned: (409, "lead-already-owned"),
        ClaimLimitReached: lambda refused: Problem(409, "claim-limit-reached", str(refused), limit=refused.limit),
        ReclaimCooldown: lambda refused: Problem(409, "reclaim-cooldown", str(refused), cooldown_until=refused.until.isoformat()),
        LeadClosed: (409, "lead-closed"),
        RepOffboarded: (409, "rep-offboarded"),
        RepUnknown: (422, "rep-unknown"),
        RepInactive: (409, "rep-inactive"),
        LeadNotOwned: (409, "lead-not-owned"),
        NotYetSeen: unseen,
    },
)


@contextmanager
def command(name: str, request: Request) -> Iterator[None]:
    """A command's refusals answered by the table above, its outcome counted; one that went through wakes
    the projector."""
    with REFUSALS.command(name):
        yield
    request.app.state.nudge()


class DirectRoute(APIRoute):
    """A route served by calling its endpoint with the bare request; the endpoint returns its response.

    FastAPI's ``route_class`` hook: the route is matched and documented like any other (its
    ``response_model``, ``openapi_extra``), but no dependencies are resolved and nothing is validated
    on the way in or out. For the claim, where that machinery costs more than the work itself.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


LEAD_ID_IN_PATH = {"name": "lead_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


async def claim(request: Request) -> Response:
    # The hottest route: every new lead draws a burst of claims, all but one refused. It parses its
    # own parameter and answers refusals with a returned, not raised, problem (see DirectRoute).
    try:
        lead = str(UUID(request.path_params["lead_id"]))
    except ValueError:
        return problem_response(validation_problem([{"field": "lead_id", "message": "Input should be a valid UUID"}]), request)
    principal = authorize(request, ("rep",))
    app: AssignmentApplication = request.app.state.assignment
    turns: LeadTurns = request.app.state.turns
    cid = correlation_id.get()

    async def decide() -> Owned:
        # Waiting for the lead's turn on the event loop, then answering from memory when the lead's
        # state settles the claim, keeps a burst of losing claims off the worker threads and the database.
        now = request.app.state.clock()
        async with turns.of(lead):
            return app.settled_claim(lead, principal.sub, now) or await run_in_threadpool(
                app.claim, lead, principal.sub, now, cid
            )

    try:
        owned = await request.app.state.catch_up.attempt(lead, decide, UNSEEN)
    except REFUSALS.refused as refused:
        return problem_response(REFUSALS.refuse("claim", refused), request)
    REFUSALS.count("claim", "ok")
    request.app.state.nudge()
    return Response(OwnershipOut.of(owned).model_dump_json(), media_type="application/json")


@router.post("/leads/{lead_id}/release", response_model=ReleaseOut, tags=["ownership"], summary="Give a lead back to the pool")
async def release(
    lead_id: UUID, app: App, upstream: Upstream, principal: OwnerOrSupervisor, request: Request, now: Now
) -> ReleaseOut:
    lead, cid = str(lead_id), correlation_id.get()
    with command("release", request):
        done = await upstream.attempt(
            lead,
            lambda: run_in_threadpool(
                lambda: app.release(lead, principal.sub, supervisor=principal.is_supervisor, now=now, correlation_id=cid)
            ),
            UNSEEN,
        )
    return ReleaseOut(lead_id=done.lead_id, rep_id=done.rep_id, reason=done.reason, cooldown_until=done.cooldown_until)


@router.post("/leads/{lead_id}/assign", response_model=OwnershipOut, tags=["ownership"], summary="Assign a lead to a rep")
async def assign(
    lead_id: UUID, body: AssignIn, app: App, upstream: Upstream, principal: Supervisor, request: Request, now: Now
) -> OwnershipOut:
    lead, cid = str(lead_id), correlation_id.get()
    with command("assign", request):
        owned = await upstream.attempt(
            lead,
            lambda: run_in_threadpool(lambda: app.assign(lead, body.rep_id, by=principal.sub, now=now, correlation_id=cid)),
            UNSEEN,
        )
    return OwnershipOut.of(owned)


@router.post(
    "/reps/{rep_id}/offboard", response_model=OffboardOut, tags=["reps"], summary="Offboard a rep and move all their leads"
)
def offboard(
    rep_id: RepPath, app: App, principal: Supervisor, request: Request, now: Now, body: OffboardIn | None = None
) -> OffboardOut:
    transfer_to = body.transfer_to if body else None
    if transfer_to == rep_id:
        raise validation_problem([{"field": "transfer_to", "message": "must differ from the rep being offboarded"}])
    with command("offboard", request):
        done = app.offboard(rep_id, transfer_to, by=principal.sub, now=now, correlation_id=correlation_id.get())
    return OffboardOut(rep_id=rep_id, transfer_to=transfer_to, moved=len(done.moved), lead_ids=done.moved)


def page_out(fetch: Any) -> LeadPage:
    try:
        page: Page = fetch()
    except InvalidCursor as exc:
        raise validation_problem([{"field": "cursor", "message": str(exc)}]) from exc
    return LeadPage(items=[LeadOut(**row) for row in page.items], next_cursor=page.next_cursor)


@router.get("/pool", response_model=LeadPage, tags=["pool"], summary="The public pool: leads nobody owns, newest first")
async def pool(
    principal: Reader,  # first: a request refused here does not wait for the view
    view: View,
    region: OptionalSingleLine = None,
    industry: OptionalSingleLine = None,
    grade: Grade | None = None,
    source: OptionalSingleLine = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> LeadPage:
    filters = {"region": region, "industry": industry, "grade": grade, "source": source}
    return await run_in_threadpool(page_out, lambda: view.pool_page(filters, limit, cursor))


@router.get("/reps/{rep_id}/leads", response_model=LeadPage, tags=["reps"], summary="The leads a rep owns")
async def rep_leads(rep_id: RepPath, principal: Reader, request: Request, limit: Limit = 50, cursor: Cursor = None) -> LeadPage:
    if principal.role == "rep" and principal.sub != rep_id:
        raise Problem(403, "not-your-leads", "A rep sees only their own leads.")
    view = await fresh_view(request)  # after the check: a refused request does not wait
    return await run_in_threadpool(page_out, lambda: view.rep_page(rep_id, limit, cursor))


@router.get("/leads/{lead_id}/ownership", response_model=LeadStatus, tags=["ownership"], summary="Who owns a lead, right now")
async def lead_ownership(lead_id: UUID, app: App, upstream: Upstream, principal: Reader) -> LeadStatus:
    try:
        lead = await upstream.attempt(str(lead_id), lambda: run_in_threadpool(app.ownership, str(lead_id)), UNSEEN)
    except NotYetSeen as exc:
        raise unseen(exc) from exc
    if principal.role == "rep" and lead.owner not in (None, principal.sub):
        raise Problem(403, "not-lead-owner", "A rep sees only their own leads and the pool.")
    return LeadStatus(
        lead_id=lead.lead_id,
        owner=lead.owner,
        how=lead.how,
        claimed_at=lead.claimed_at,
        protected_until=lead.protected_until,
        stage=lead.stage,
        due_at=lead.due_at,
        due_reason=lead.due_reason,
        cooldown_until=lead.cooldowns.get(principal.sub),
    )


def install_routes(app: FastAPI) -> None:
    """Add assignment's routes to ``app``; the claim goes on the app's own router, ahead of the others.

    A route of an included router is matched through FastAPI's included-router resolution, which
    costs the claim about as much again as its own work; on the app's router it is matched first.
    """
    app.router.add_api_route(
        "/leads/{lead_id}/claim",
        claim,
        methods=["POST"],
        route_class_override=DirectRoute,
        response_model=OwnershipOut,
        tags=["ownership"],
        summary="Claim a lead for yourself",
        openapi_extra={"parameters": [LEAD_ID_IN_PATH]},
    )
    app.include_router(router)
