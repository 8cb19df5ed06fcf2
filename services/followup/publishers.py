"""The explicit mapping from followup's recorded domain events to public integration events.

Internal facts (the file opened, grade learned, claim or release mirrored, recycle deadlines) are
not republished: they belong to other services or are followup's own bookkeeping. Event ids are
derived from the recorded event, so a re-publication after a crash carries the same id.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from services.followup import SERVICE
from services.followup.domain.lead_file import LeadFile
from shared.events import (
    Envelope,
    FollowUpLogged,
    FollowUpTaskCancelled,
    FollowUpTaskCompleted,
    FollowUpTaskOverdue,
    FollowUpTaskScheduled,
    LeadLost,
    LeadStageChanged,
    LeadWon,
    Payload,
)
from shared.relay import envelope_of


def _payload(event: DomainEventProtocol, lead_id: str) -> Payload | None:
    e: object = event
    match e:
        case LeadFile.FollowUpLogged():
            return FollowUpLogged(
                lead_id=lead_id,
                follow_up_id=e.follow_up_id,
                rep_id=e.rep_id,
                channel=e.channel,
                summary=e.summary,
                pain_points=e.pain_points,
                objections=e.objections,
                next_step=e.next_step,
                next_follow_up_at=e.next_follow_up_at,
                stage=e.stage,
                tags=e.tags,
                logged_at=e.at,
            )
        case LeadFile.StageChanged():
            return LeadStageChanged(
                lead_id=lead_id, from_stage=e.from_stage, to_stage=e.to_stage, rep_id=e.rep_id, changed_by=e.changed_by
            )
        case LeadFile.Won():
            return LeadWon(lead_id=lead_id, rep_id=e.by, amount=e.amount, currency=e.currency)
        case LeadFile.Lost():
            return LeadLost(lead_id=lead_id, rep_id=e.by, reason=e.reason)
        case LeadFile.TaskScheduled():
            return FollowUpTaskScheduled(
                lead_id=lead_id, task_id=e.task_id, rep_id=e.rep_id, kind=e.kind, title=e.title, due_at=e.due_at
            )
        case LeadFile.TaskCompleted():
            return FollowUpTaskCompleted(
                lead_id=lead_id,
                task_id=e.task_id,
                rep_id=e.rep_id,
                completed_at=e.at,
                on_time=e.on_time,
                follow_up_id=e.follow_up_id,
                completed_by=e.completed_by,
            )
        case LeadFile.TaskOverdue():
            return FollowUpTaskOverdue(
                lead_id=lead_id, task_id=e.task_id, rep_id=e.rep_id, due_at=e.due_at, escalated_to=e.escalated_to
            )
        case LeadFile.TaskCancelled():
            return FollowUpTaskCancelled(lead_id=lead_id, task_id=e.task_id, rep_id=e.rep_id, reason=e.reason)
    return None


def to_integration_events(event: DomainEventProtocol, notification: Notification) -> Sequence[Envelope]:
    if not isinstance(event, LeadFile.Event):
        return []
    payload = _payload(event, str(event.originator_id))
    if payload is None:
        return []
    trace = event.trace  # type: ignore[attr-defined]
    time = event.at  # type: ignore[attr-defined]
    return [
        envelope_of(
            event,
            payload,
            service=SERVICE,
            time=time,
            correlation_id=trace.get("correlation_id"),
            causation_id=trace.get("causation_id"),
        )
    ]
