"""followup's own recorded events → changes to its read models (pure): the task board and the
index of recycle reminders that the scheduler watches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import resolve_topic

from services.followup.domain.lead_file import LeadFile


@dataclass(frozen=True)
class TaskAdded:
    task_id: str
    lead_id: str
    rep_id: str
    kind: str
    title: str
    due_at: datetime
    scheduled_at: datetime


@dataclass(frozen=True)
class TaskDone:
    task_id: str
    at: datetime
    on_time: bool
    follow_up_id: str | None


@dataclass(frozen=True)
class TaskOverdue:
    task_id: str
    at: datetime
    escalated_to: str | None


@dataclass(frozen=True)
class TaskCancelled:
    task_id: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class ReminderDue:
    """The lead's owner is to be warned at ``remind_at`` (None: no warning pending)."""

    lead_id: str
    remind_at: datetime | None


Change = TaskAdded | TaskDone | TaskOverdue | TaskCancelled | ReminderDue


# The recorded events :func:`changes_for` maps to changes; every other event changes no read model.
PROJECTED = (LeadFile.TaskScheduled, LeadFile.TaskCompleted, LeadFile.TaskOverdue, LeadFile.TaskCancelled, LeadFile.DeadlineSet)


def projected(topic: str) -> bool:
    """Whether an event recorded under ``topic`` may change a read model: the others need not be decoded
    (most of the log: every captured lead opens a file, and only claims and contacts plan tasks)."""
    return issubclass(resolve_topic(topic), PROJECTED)


def changes_for(event: DomainEventProtocol) -> list[Change]:
    e: object = event
    lead_id = str(event.originator_id)
    match e:
        case LeadFile.TaskScheduled():
            return [TaskAdded(e.task_id, lead_id, e.rep_id, e.kind, e.title, e.due_at, e.at)]
        case LeadFile.TaskCompleted():
            return [TaskDone(e.task_id, e.at, e.on_time, e.follow_up_id)]
        case LeadFile.TaskOverdue():
            return [TaskOverdue(e.task_id, e.at, e.escalated_to)]
        case LeadFile.TaskCancelled():
            return [TaskCancelled(e.task_id, e.at, e.reason)]
        case LeadFile.DeadlineSet():
            return [ReminderDue(lead_id, e.remind_at)]
    return []
