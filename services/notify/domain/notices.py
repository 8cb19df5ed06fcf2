"""Who is told what when something happens (a pure policy: an event in, notices and reminders out).

- a lead assigned to a rep (by a manager, or automatically): the rep, with the lead's name, grade, score and the
  first-contact deadline;
- a task scheduled for a rep: a reminder before it is due (the ticker raises it); a recycle warning: at once,
  with the time left;
- a task overdue: the rep, and the manager it was escalated to;
- a deal won: the rest of the winner's team and its manager;
- a webhook subscription paused after failing for a day: its owner (raised by the delivery side, not an event).

A rep who claimed or reported a lead themself is not told about it, nor is anyone about what they did themself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from shared.events import (
    AnyPayload,
    FollowUpTaskCancelled,
    FollowUpTaskCompleted,
    FollowUpTaskOverdue,
    FollowUpTaskScheduled,
    LeadClaimed,
    LeadWon,
    utc_rfc3339,
)

Kind = Literal[
    "lead_assigned", "task_due_soon", "task_overdue", "task_escalated", "recycle_warning", "deal_won", "webhook_paused", "digest"
]
KINDS: tuple[Kind, ...] = (
    "lead_assigned",
    "task_due_soon",
    "task_overdue",
    "task_escalated",
    "recycle_warning",
    "deal_won",
    "webhook_paused",
    "digest",
)
RECYCLE_WARNING = "recycle_warning"  # followup's task kind for the warning before a lead is recycled


@dataclass(frozen=True, slots=True)
class Lead:
    name: str
    grade: str | None = None
    score: int | None = None
    company: str | None = None


@dataclass(frozen=True, slots=True)
class Person:
    rep_id: str
    display_name: str
    role: str = "rep"
    team: str | None = None
    manager: str | None = None
    email: str | None = None
    phone: str | None = None
    active: bool = True


class Facts(Protocol):
    """What notify knows when it decides (its own tables, as of the event being applied)."""

    def lead(self, lead_id: str) -> Lead | None: ...

    def person(self, rep_id: str) -> Person | None: ...

    def team(self, team: str) -> list[Person]: ...


@dataclass(frozen=True, slots=True)
class Notice:
    recipient: str
    kind: Kind
    lead_id: str | None
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reminder:
    """Remind ``rep_id`` of a task at ``remind_at`` unless it is done, cancelled or overdue by then."""

    task_id: str
    lead_id: str
    rep_id: str
    title: str
    due_at: datetime
    remind_at: datetime


@dataclass(slots=True)
class Effects:
    notices: list[Notice] = field(default_factory=list)
    reminders: list[Reminder] = field(default_factory=list)
    settled_tasks: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rules:
    first_contact_sla: timedelta
    due_soon_before: timedelta
    max_event_age: timedelta


def _lead_params(facts: Facts, lead_id: str) -> dict[str, Any]:
    lead = facts.lead(lead_id)
    if lead is None:
        return {"lead_name": None}
    return {"lead_name": lead.name, "grade": lead.grade, "score": lead.score, "company": lead.company}


def _name(facts: Facts, rep_id: str | None) -> str | None:
    if rep_id is None:
        return None
    person = facts.person(rep_id)
    return person.display_name if person is not None else rep_id


def decide(payload: AnyPayload, time: datetime, now: datetime, facts: Facts, rules: Rules) -> Effects:
    """The notices and reminders one event calls for. An event older than ``max_event_age`` (history read on a
    first start, or after a long outage) tells nobody; its reminders are still tracked (they are judged when due)."""
    effects = Effects()
    fresh = now - time <= rules.max_event_age
    match payload:
        case LeadClaimed(how="assign" | "auto") if fresh:
            params = _lead_params(facts, payload.lead_id) | {
                "deadline": utc_rfc3339(time + rules.first_contact_sla),
                "how": payload.how,
                "assigned_by": _name(facts, payload.assigned_by),
            }
            effects.notices.append(Notice(payload.rep_id, "lead_assigned", payload.lead_id, params))
        case FollowUpTaskScheduled(kind=kind) if kind == RECYCLE_WARNING:
            if fresh:
                params = _lead_params(facts, payload.lead_id) | {
                    "title": payload.title,
                    "recycle_at": utc_rfc3339(payload.due_at),
                }
                effects.notices.append(Notice(payload.rep_id, "recycle_warning", payload.lead_id, params))
        case FollowUpTaskScheduled():
            remind_at = max(time, payload.due_at - rules.due_soon_before)
            effects.reminders.append(
                Reminder(payload.task_id, payload.lead_id, payload.rep_id, payload.title, payload.due_at, remind_at)
            )
        case FollowUpTaskCompleted() | FollowUpTaskCancelled():
            effects.settled_tasks.append(payload.task_id)
        case FollowUpTaskOverdue():
            effects.settled_tasks.append(payload.task_id)
            if fresh:
                params = _lead_params(facts, payload.lead_id) | {
                    "task_id": payload.task_id,
                    "due_at": utc_rfc3339(payload.due_at),
                    "rep_id": payload.rep_id,
                    "rep_name": _name(facts, payload.rep_id),
                }
                effects.notices.append(Notice(payload.rep_id, "task_overdue", payload.lead_id, params))
                if payload.escalated_to and payload.escalated_to != payload.rep_id:
                    effects.notices.append(Notice(payload.escalated_to, "task_escalated", payload.lead_id, params))
        case LeadWon() if fresh and payload.rep_id:
            winner = facts.person(payload.rep_id)
            if winner is not None:
                params = _lead_params(facts, payload.lead_id) | {
                    "rep_id": payload.rep_id,
                    "rep_name": winner.display_name,
                    "amount": payload.amount,
                    "currency": payload.currency,
                }
                told = {payload.rep_id}
                team = facts.team(winner.team) if winner.team else []
                for member in [*team, *([facts.person(winner.manager)] if winner.manager else [])]:
                    if member is not None and member.active and member.rep_id not in told:
                        told.add(member.rep_id)
                        effects.notices.append(Notice(member.rep_id, "deal_won", payload.lead_id, params))
    return effects


def due_soon(reminder: Reminder, now: datetime) -> Notice | None:
    """The reminder's notice, unless the task is already past due (its overdue notice comes from followup)."""
    if reminder.due_at <= now:
        return None
    params = {"task_id": reminder.task_id, "title": reminder.title, "due_at": utc_rfc3339(reminder.due_at)}
    return Notice(reminder.rep_id, "task_due_soon", reminder.lead_id, params)
