"""Read-side rules with no I/O: the pipeline's stage order and the customer 360 view folded from events.

The 360 view is not stored as a row: the lead's events are, and the view is folded from them on
request. The same fold answers "now" and ``as_of`` (events up to that moment), so the past view is
the view as it stood then, not a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from shared.events import (
    FollowUpLogged,
    FollowUpTaskCancelled,
    FollowUpTaskCompleted,
    FollowUpTaskOverdue,
    FollowUpTaskScheduled,
    LeadCaptured,
    LeadClaimed,
    LeadLost,
    LeadRecaptured,
    LeadReleased,
    LeadScored,
    LeadStageChanged,
    LeadWon,
    Payload,
    PersonalDataErased,
    Stage,
)

# The funnel's order; ``lost`` leaves it from any open stage and is counted apart.
FUNNEL_STAGES: tuple[Stage, ...] = ("new", "assigned", "contacted", "qualified", "quoted", "negotiating", "won")
STAGE_RANK: dict[str, int] = {stage: rank for rank, stage in enumerate(FUNNEL_STAGES)}
FINAL_STAGES = frozenset({"won", "lost"})


def stage_after(payload: Payload, current: str | None) -> str | None:
    """The lead's stage once ``payload`` happened, or None when the event says nothing about it."""
    if current in FINAL_STAGES:
        return current
    match payload:
        case LeadCaptured():
            return "new"
        case LeadClaimed():
            return "assigned" if current in (None, "new") else current
        case LeadReleased():
            return "new"
        case FollowUpLogged():
            return payload.stage
        case LeadStageChanged():
            return payload.to_stage
        case LeadWon():
            return "won"
        case LeadLost():
            return "lost"
    return None


class Event(Protocol):
    """What the fold needs of a stored event."""

    time: datetime
    payload: Payload


class ScoreChange(BaseModel):
    at: datetime
    score: int
    grade: str
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    signal: str | None = None


class Recapture(BaseModel):
    at: datetime
    source: str
    captured_by: str


class Ownership(BaseModel):
    """One period a rep owned the lead; ``released_at`` is None while it lasts."""

    rep_id: str
    how: str
    claimed_at: datetime
    protected_until: datetime
    assigned_by: str | None = None
    released_at: datetime | None = None
    release_reason: str | None = None
    released_by: str | None = None


class StageChange(BaseModel):
    stage: str
    at: datetime


class FollowUp(BaseModel):
    follow_up_id: str
    at: datetime
    rep_id: str
    channel: str
    summary: str
    pain_points: str | None = None
    objections: str | None = None
    next_step: str | None = None
    next_follow_up_at: datetime | None = None
    stage: str


class Task(BaseModel):
    task_id: str
    rep_id: str
    kind: str
    title: str
    due_at: datetime
    overdue: bool = False


class FirstResponse(BaseModel):
    """Capture → first follow-up."""

    at: datetime
    rep_id: str
    seconds: float


class Outcome(BaseModel):
    result: str
    at: datetime
    rep_id: str | None = None
    amount: float | None = None
    currency: str | None = None
    reason: str | None = None


class Customer360(BaseModel):
    """Everything known about one lead, as it stood at ``as_of`` (or at its last event)."""

    lead_id: str
    as_of: datetime | None = None
    last_event_at: datetime
    captured_at: datetime | None = None
    captured_by: str | None = None
    reported_by: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    personal_data_erased: bool = False
    source: str | None = None
    recaptures: list[Recapture] = Field(default_factory=list)
    score: int | None = None
    grade: str | None = None
    score_history: list[ScoreChange] = Field(default_factory=list)
    owner: Ownership | None = None
    ownership_history: list[Ownership] = Field(default_factory=list)
    stage: str | None = None
    stage_history: list[StageChange] = Field(default_factory=list)
    follow_ups: list[FollowUp] = Field(default_factory=list)
    open_tasks: list[Task] = Field(default_factory=list)
    first_response: FirstResponse | None = None
    outcome: Outcome | None = None


ERASED = "[erased]"
PROFILE_FIELDS = ("name", "phone", "email", "wechat", "company", "title", "industry", "region", "company_size", "needs")


def fold_customer(events: Iterable[Event], lead_id: str, as_of: datetime | None = None) -> Customer360 | None:
    """The 360 view from the lead's events (given in topic order), folded in the order they happened: by
    ``time``, events of the same time in topic order. Only events at or before ``as_of`` count.

    Services publish a lead's events in the order each recorded them, but not in time order across services
    (followup's ``new → assigned``, dated at the claim, may land after assignment's later release), nor always
    within one (an event mirroring an upstream one carries that event's time): the histories are in time order.

    None when the lead was not captured by then: a lead exists from its ``LeadCaptured`` on, and events of
    a lead never captured describe nothing anyone can look up. A second ``LeadCaptured`` (a new id for a
    known lead) restates nothing: the first capture stands. (The writer keeps both from being stored at
    all, ``services/analytics/tracking.py``; the fold holds to the same rule for what was stored before.)
    """
    view: Customer360 | None = None
    tasks: dict[str, Task] = {}
    for event in sorted(events, key=_time):  # stable: ties keep topic order (one producer's recording order)
        if as_of is not None and event.time > as_of:
            continue
        if isinstance(event.payload, LeadCaptured) and view is not None and view.captured_at is not None:
            continue
        if view is None:
            view = Customer360(lead_id=lead_id, as_of=as_of, last_event_at=event.time)
        _apply(view, tasks, event.time, event.payload)
        view.last_event_at = event.time
    if view is None or view.captured_at is None:
        return None
    view.open_tasks = sorted(tasks.values(), key=lambda task: task.due_at)
    return view


def _apply(view: Customer360, tasks: dict[str, Task], at: datetime, payload: Payload) -> None:
    match payload:
        case LeadCaptured():
            view.captured_at, view.captured_by, view.reported_by = at, payload.captured_by, payload.reported_by
            view.source = payload.source
            view.profile = {name: getattr(payload, name) for name in PROFILE_FIELDS}
            view.profile |= {"contacts": [c.model_dump() for c in payload.contacts], "tags": list(payload.tags)}
            _score(view, ScoreChange(at=at, score=payload.score, grade=payload.grade, reasons=payload.score_reasons))
        case LeadRecaptured():
            view.recaptures.append(Recapture(at=at, source=payload.source, captured_by=payload.captured_by))
        case LeadScored():
            _score(
                view, ScoreChange(at=at, score=payload.score, grade=payload.grade, reasons=payload.reasons, signal=payload.signal)
            )
        case LeadClaimed():
            if view.owner is not None:  # a claim over an owner: the previous ownership ends here
                _release(view, at, "reassigned", None)
            view.owner = Ownership(
                rep_id=payload.rep_id,
                how=payload.how,
                claimed_at=at,
                protected_until=payload.protected_until,
                assigned_by=payload.assigned_by,
            )
            view.ownership_history.append(view.owner)
        case LeadReleased():
            if view.owner is not None:
                _release(view, at, payload.reason, payload.released_by)
        case FollowUpLogged():
            view.follow_ups.append(FollowUp(at=at, **payload.model_dump(include=set(FollowUp.model_fields) - {"at"})))
            if view.first_response is None and view.captured_at is not None:
                seconds = (at - view.captured_at).total_seconds()
                view.first_response = FirstResponse(at=at, rep_id=payload.rep_id, seconds=seconds)
        case LeadWon():
            view.outcome = Outcome(result="won", at=at, rep_id=payload.rep_id, amount=payload.amount, currency=payload.currency)
        case LeadLost():
            view.outcome = Outcome(result="lost", at=at, rep_id=payload.rep_id, reason=payload.reason)
        case FollowUpTaskScheduled():
            tasks[payload.task_id] = Task(**payload.model_dump(include=set(Task.model_fields)))
        case FollowUpTaskOverdue():
            if payload.task_id in tasks:
                tasks[payload.task_id].overdue = True
        case FollowUpTaskCompleted() | FollowUpTaskCancelled():
            tasks.pop(payload.task_id, None)
        case PersonalDataErased():
            view.personal_data_erased = True
            view.profile = {}
            for follow_up in view.follow_ups:
                follow_up.summary, follow_up.pain_points, follow_up.objections, follow_up.next_step = ERASED, None, None, None
    stage = _stage_of(view, at, payload)
    if stage is not None and stage != view.stage:
        view.stage = stage
        view.stage_history.append(StageChange(stage=stage, at=at))


def _time(event: Event) -> datetime:
    return event.time


def _stage_of(view: Customer360, at: datetime, payload: Payload) -> str | None:
    """The stage after ``payload`` (applied to ``view`` already), or None when it does not change it; as
    assignment, which owns the stage, keeps it (docs/events.md): claims and releases set it; followup's moves
    count for the ownership they were made in (the owner's, at or after the claim); won and lost always do."""
    match payload:
        case FollowUpLogged():
            moved_to, rep_id = payload.stage, payload.rep_id
        case LeadStageChanged():
            moved_to, rep_id = payload.to_stage, payload.rep_id
        case _:
            return stage_after(payload, view.stage)
    current = view.stage
    if current in FINAL_STAGES or moved_to == current:
        return None
    if moved_to in FINAL_STAGES:
        return moved_to
    if current is not None and STAGE_RANK.get(moved_to, -1) <= STAGE_RANK.get(current, -1):
        return None  # only forward (followup's own echo of a release, back to ``new``, changes nothing here)
    owner = view.owner
    if owner is None or rep_id not in (None, owner.rep_id) or at < owner.claimed_at:
        return None
    return moved_to


def _score(view: Customer360, change: ScoreChange) -> None:
    view.score, view.grade = change.score, change.grade
    view.score_history.append(change)


def _release(view: Customer360, at: datetime, reason: str, released_by: str | None) -> None:
    assert view.owner is not None
    view.owner.released_at, view.owner.release_reason, view.owner.released_by = at, reason, released_by
    view.owner = None


def may_view(view: Customer360, role: str, actor: str) -> bool:
    """Reps see their own current leads and the public pool; everyone else who may read sees all."""
    if role != "rep":
        return True
    return view.owner is None or view.owner.rep_id == actor
