"""The explicit mapping from intake's recorded domain events to public integration events."""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from services.intake import SERVICE
from services.intake.domain import Lead
from shared.events import Envelope, LeadCaptured, LeadRecaptured, deterministic_event_id, make_envelope


def to_integration_events(event: DomainEventProtocol, notification: Notification) -> Sequence[Envelope]:
    lead_id = str(event.originator_id)
    event_id = deterministic_event_id(SERVICE, lead_id, event.originator_version)
    common = {
        "service": SERVICE,
        "time": event.timestamp,
        "event_id": event_id,
        "correlation_id": getattr(event, "correlation_id", None),
    }
    if isinstance(event, Lead.Captured):
        payload = LeadCaptured(
            lead_id=lead_id,
            name=event.name,
            phone=event.phone,
            source=event.source,
            score=event.score,
            grade=event.grade,
            captured_by=event.captured_by,
            reported_by=event.reported_by,
            **event.profile,
        )
        return [make_envelope(payload, **common)]
    if isinstance(event, Lead.Recaptured):
        payload = LeadRecaptured(lead_id=lead_id, source=event.source, captured_by=event.captured_by)
        return [make_envelope(payload, **common)]
    return []
