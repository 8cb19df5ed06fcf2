"""followup's HTTP API: translate requests, call the application, map refusals to problems in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from services.followup import SERVICE
from services.followup.app import FollowupApplication, LeadNotFound
from services.followup.domain.contact import Actor, Contact
from services.followup.domain.errors import InvalidFollowUp, NoOwner, NotOwner, TaskNotFound, TaskNotOpen
from services.followup.domain.lead_file import LeadFile, Trace
from services.followup.domain.pipeline import StageMoveForbidden
from services.followup.schemas import (
    FollowUpCreated,
    FollowUpIn,
    FollowUpOut,
    StageMoveOut,
    TaskOut,
    TaskPage,
    TimelineOut,
)
from services.followup.task_board import TaskBoard, TaskQuery
from shared.auth import Principal, require_roles
from shared.catchup import CatchUp, NotYetSeen, OwnWrites, not_yet_seen
from shared.logs import correlation_id
from shared.metrics import COMMANDS, FOLLOW_UPS_LOGGED
from shared.problems import Problem, validation_problem
from shared.service import AppClock, Now
from shared.text import OptionalSingleLine, SingleLine

router = APIRouter()

Worker = Annotated[Principal, require_roles("rep", "manager", "admin")]
Reader = Annotated[Principal, require_roles("rep", "manager", "admin", "integration")]


def followup_app(request: Request) -> FollowupApplication:
    return request.app.state.followup


def task_board(request: Request) -> TaskBoard:
    return request.app.state.board


# Async, so FastAPI resolves them on the event loop rather than in a worker thread.
async def catch_up(request: Request) -> CatchUp:
    return request.app.state.catch_up


async def own_writes(request: Request) -> OwnWrites:
    return request.app.state.own_writes


App = Annotated[FollowupApplication, Depends(followup_app)]
Board = Annotated[TaskBoard, Depends(task_board)]
Upstream = Annotated[CatchUp, Depends(catch_up)]
Fresh = Annotated[OwnWrites, Depends(own_writes)]
# Refusals that may only mean followup has not consumed the lead's capture, claim or reassignment yet: they
# wait for the lead's partition (see shared.catchup) before they stand.
UNSEEN = (LeadNotFound, NoOwner, NotOwner)


def unseen_problem(exc: NotYetSeen) -> Problem:
    """What a refusal that waiting did not lift answers: "not seen yet" unless followup knows better."""
    refused = exc.refusal
    if isinstance(refused, NotOwner) and exc.caught_up:
        # followup read the lead's partition to its end: it knows who owns the lead, and it is someone else.
        return Problem(403, "not-owner", str(refused))
    if isinstance(refused, LeadNotFound):
        detail = f"followup has not seen lead {refused} captured yet (it learns of leads from the topic)."
        return not_yet_seen(404, detail, caught_up=exc.caught_up)
    detail = f"{refused} followup learns of claims from the topic and has not seen one for you yet."
    return not_yet_seen(409, detail, caught_up=exc.caught_up)


@contextmanager
def refusals(command: str) -> Iterator[None]:
    """The one place where what the domain refuses becomes a status code."""
    try:
        yield
    except NotYetSeen as exc:
        COMMANDS.labels(SERVICE, command, "not_yet_seen").inc()
        raise unseen_problem(exc) from exc
    except LeadNotFound as exc:
        COMMANDS.labels(SERVICE, command, "not_found").inc()
        raise Problem(404, "lead-not-found", f"No lead {exc}.") from exc
    except TaskNotFound as exc:
        COMMANDS.labels(SERVICE, command, "not_found").inc()
        raise Problem(404, "task-not-found", f"No task {exc}.") from exc
    except NotOwner as exc:
        COMMANDS.labels(SERVICE, command, "forbidden").inc()
        raise Problem(403, "not-owner", str(exc)) from exc
    except (NoOwner, TaskNotOpen) as exc:
        COMMANDS.labels(SERVICE, command, "conflict").inc()
        kind = "lead-not-owned" if isinstance(exc, NoOwner) else "task-not-open"
        raise Problem(409, kind, str(exc)) from exc
    except StageMoveForbidden as exc:
        COMMANDS.labels(SERVICE, command, "rejected").inc()
        raise Problem(422, "stage-move-forbidden", str(exc)) from exc
    except InvalidFollowUp as exc:
        COMMANDS.labels(SERVICE, command, "rejected").inc()
        raise validation_problem([{"field": exc.field, "message": exc.message}]) from exc
    COMMANDS.labels(SERVICE, command, "ok").inc()


def actor_of(principal: Principal) -> Actor:
    return Actor(principal.sub, supervisor=principal.is_supervisor)


def request_trace() -> Trace:
    return {"correlation_id": correlation_id.get(), "causation_id": None}


@router.post(
    "/leads/{lead_id}/follow-ups",
    status_code=201,
    response_model=FollowUpCreated,
    tags=["follow-ups"],
    summary="Log a contact with the customer (owner or manager)",
)
async def log_follow_up(
    lead_id: UUID, body: FollowUpIn, app: App, upstream: Upstream, principal: Worker, clock: AppClock
) -> FollowUpCreated:
    contact = Contact(**body.model_dump(exclude={"tags"}), tags=tuple(body.tags))
    lead, actor, trace = str(lead_id), actor_of(principal), request_trace()
    with refusals("log_follow_up"):
        logged = await upstream.attempt(
            lead, lambda: run_in_threadpool(lambda: app.log_follow_up(lead, actor, contact, clock(), trace)), UNSEEN
        )
    FOLLOW_UPS_LOGGED.labels(SERVICE, principal.sub, body.channel).inc()
    return FollowUpCreated(follow_up_id=logged.follow_up_id, lead_id=str(lead_id), stage=logged.stage)


@router.get(
    "/leads/{lead_id}/follow-ups",
    response_model=TimelineOut,
    tags=["follow-ups"],
    summary="The lead's timeline: contacts and stage moves, oldest first",
)
async def timeline(lead_id: UUID, app: App, upstream: Upstream, principal: Reader) -> TimelineOut:
    lead = str(lead_id)

    async def file_of() -> LeadFile:
        file = await run_in_threadpool(app.lead_file, lead)
        if file is None:
            raise LeadNotFound(lead)
        return file

    try:
        file = await upstream.attempt(lead, file_of, (LeadNotFound,))
    except NotYetSeen as exc:
        raise unseen_problem(exc) from exc
    if principal.role == "rep" and file.owner not in (None, principal.sub):
        raise Problem(403, "not-owner", "A rep sees the timelines of their own leads and of leads in the public pool.")
    return TimelineOut(
        lead_id=file.lead_id,
        owner=file.owner,
        grade=file.grade,
        stage=file.stage,
        follow_ups=[FollowUpOut(**f) for f in file.follow_ups],
        stage_history=[StageMoveOut(**move) for move in file.stage_history],
        outcome=file.outcome,
    )


@router.get("/tasks", response_model=TaskPage, tags=["tasks"], summary="Reminders and SOP tasks (a rep sees their own)")
async def list_tasks(
    board: Board,
    fresh: Fresh,
    principal: Reader,
    rep_id: OptionalSingleLine = None,
    status: Literal["open", "overdue", "done", "cancelled"] | None = None,
    due_before: Annotated[datetime | None, Query(description="RFC 3339 with a time zone")] = None,
    lead_id: UUID | None = None,
    escalated_to: Annotated[OptionalSingleLine, Query(description="Overdue tasks escalated to this manager")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TaskPage:
    if principal.role == "rep":
        if rep_id not in (None, principal.sub):
            raise Problem(403, "not-own-tasks", "A rep sees only their own tasks.")
        rep_id = principal.sub
    if due_before is not None and due_before.tzinfo is None:
        raise validation_problem([{"field": "due_before", "message": "must include a time zone"}])
    query = TaskQuery(rep_id, status, due_before, str(lead_id) if lead_id else None, escalated_to, limit + 1, offset)
    await fresh.wait()  # the board reflects every command (and consumed event) recorded before this request
    rows = await run_in_threadpool(board.tasks, query)
    return TaskPage(items=[TaskOut(**row) for row in rows[:limit]], next_offset=offset + limit if len(rows) > limit else None)


@router.get("/tasks/{task_id}", response_model=TaskOut, tags=["tasks"], summary="One task")
async def get_task(task_id: SingleLine, board: Board, fresh: Fresh, principal: Reader) -> TaskOut:
    await fresh.wait()
    row = await run_in_threadpool(board.task, task_id)
    if row is None:
        raise Problem(404, "task-not-found", f"No task {task_id}.")
    if principal.role == "rep" and row["rep_id"] != principal.sub:
        raise Problem(403, "not-own-tasks", "A rep sees only their own tasks.")
    return TaskOut(**row)


@router.post(
    "/tasks/{task_id}/complete",
    response_model=TaskOut,
    tags=["tasks"],
    summary="Mark a task done by hand (its rep or a manager); done again changes nothing",
)
async def complete_task(task_id: SingleLine, app: App, board: Board, fresh: Fresh, principal: Worker, now: Now) -> TaskOut:
    # A task exists only once followup consumed the claim or recorded the contact that planned it; its id is
    # known from followup (the board, or the topic): the board, once it reflects every write, knows it too.
    await fresh.wait()
    row = await run_in_threadpool(board.task, task_id)
    if row is None:
        raise Problem(404, "task-not-found", f"No task {task_id}.")
    actor, trace = actor_of(principal), request_trace()
    with refusals("complete_task"):
        task = await run_in_threadpool(app.complete_task, row["lead_id"], task_id, actor, now, trace)
    return TaskOut.of(row["lead_id"], task)
