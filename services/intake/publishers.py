"""The explicit mapping from intake's recorded domain events to public integration events.

- ``Lead.Captured`` → ``LeadCaptured``, with two added fields: ``score_reasons`` (which rules make up the
  initial score) and ``possible_duplicates`` (lead ids sharing its WeChat, email, or company + name);
- ``Lead.Recaptured`` → ``LeadRecaptured``;
- ``Lead.Scored`` (a behaviour signal changed the score) → ``LeadScored``.

Event ids are derived from (lead, version): a republished event keeps its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from services.intake import SERVICE
from services.intake.domain import Lead
from shared.events import Envelope, LeadCaptured, LeadRecaptured, LeadScored
from shared.relay import envelope_of


def to_integration_events(event: DomainEventProtocol, notification: Notification) -> Sequence[Envelope]:
    lead_id = str(event.originator_id)
    correlation_id = getattr(event, "correlation_id", None)

    def envelope(payload: LeadCaptured | LeadRecaptured | LeadScored, time: datetime) -> Envelope:
        return envelope_of(event, payload, service=SERVICE, time=time, correlation_id=correlation_id)

    if isinstance(event, Lead.Captured):
        captured = LeadCaptured(
            lead_id=lead_id,
            name=event.name,
            phone=event.phone,
            source=event.source,
            score=event.score,
            grade=event.grade,
            captured_by=event.captured_by,
            reported_by=event.reported_by,
            score_reasons=event.reasons,
            possible_duplicates=event.possible_duplicates,
            **event.profile,
        )
        return [envelope(captured, event.captured_at)]
    if isinstance(event, Lead.Recaptured):
        recaptured = LeadRecaptured(lead_id=lead_id, source=event.source, captured_by=event.captured_by)
        return [envelope(recaptured, event.recaptured_at)]
    if isinstance(event, Lead.Scored):
        scored = LeadScored(
            lead_id=lead_id,
            score=event.score,
            grade=event.grade,
            previous_score=event.previous_score,
            previous_grade=event.previous_grade,
            reasons=event.reasons,
            signal=event.signal,
            recorded_by=event.recorded_by,
        )
        return [envelope(scored, event.scored_at)]
    return []
