"""followup's HTTP API: translate requests, call the application, map refusals to problems in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from services.followup import SERVICE
from services.followup.app import FollowupApplication, LeadNotFound
from services.followup.domain.contact import Actor, Contact
from services.followup.domain.errors import InvalidFollowUp, NoOwner, NotOwner, TaskNotFound, TaskNotOpen
from services.followup.domain.lead_file import Trace
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
from shared.logs import correlation_id
from shared.metrics import COMMANDS, FOLLOW_UPS_LOGGED
from shared.problems import Problem, validation_problem
from shared.service import Now
from shared.text import OptionalSingleLine, SingleLine

router = APIRouter()

Worker = Annotated[Principal, require_roles("rep", "manager", "admin")]
Reader = Annotated[Principal, require_roles("rep", "manager", "admin", "integration")]


def followup_app(request: Request) -> FollowupApplication:
    return request.app.state.followup


def task_board(request: Request) -> TaskBoard:
    return request.app.state.board


App = Annotated[FollowupApplication, Depends(followup_app)]
Board = Annotated[TaskBoard, Depends(task_board)]


@contextmanager
def refusals(command: str) -> Iterator[None]:
    """The one place where what the domain refuses becomes a status code."""
    try:
        yield
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
def log_follow_up(lead_id: UUID, body: FollowUpIn, app: App, principal: Worker, now: Now) -> FollowUpCreated:
    contact = Contact(**body.model_dump(exclude={"tags"}), tags=tuple(body.tags))
    with refusals("log_follow_up"):
        logged = app.log_follow_up(str(lead_id), actor_of(principal), contact, now, request_trace())
    FOLLOW_UPS_LOGGED.labels(SERVICE, principal.sub, body.channel).inc()
    return FollowUpCreated(follow_up_id=logged.follow_up_id, lead_id=str(lead_id), stage=logged.stage)


@router.get(
    "/leads/{lead_id}/follow-ups",
    response_model=TimelineOut,
    tags=["follow-ups"],
    summary="The lead's timeline: contacts and stage moves, oldest first",
)
def timeline(lead_id: UUID, app: App, principal: Reader) -> TimelineOut:
    file = app.lead_file(str(lead_id))
    if file is None:
        raise Problem(404, "lead-not-found", f"No lead {lead_id}.")
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
def list_tasks(
    board: Board,
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
    rows = board.tasks(query)
    return TaskPage(items=[TaskOut(**row) for row in rows[:limit]], next_offset=offset + limit if len(rows) > limit else None)


@router.get("/tasks/{task_id}", response_model=TaskOut, tags=["tasks"], summary="One task")
def get_task(task_id: SingleLine, board: Board, principal: Reader) -> TaskOut:
    row = board.task(task_id)
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
def complete_task(task_id: SingleLine, app: App, board: Board, principal: Worker, now: Now) -> TaskOut:
    row = board.task(task_id)
    if row is None:
        raise Problem(404, "task-not-found", f"No task {task_id}.")
    with refusals("complete_task"):
        task = app.complete_task(row["lead_id"], task_id, actor_of(principal), now, request_trace())
    return TaskOut.of(row["lead_id"], task)
