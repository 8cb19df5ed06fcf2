"""The explicit mapping from assignment's recorded domain events to public integration events.

Only changes of hands are public (``LeadClaimed``, ``LeadReleased``); deadlines, rep counters and
round-robin positions are internal. Event ids are derived from the aggregate id and version, so a
republished event keeps its CloudEvents ``id``.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from services.assignment import SERVICE
from services.assignment.domain.ownership import Ownership
from shared.events import Envelope, LeadClaimed, LeadReleased
from shared.relay import envelope_of


def to_integration_events(event: DomainEventProtocol, notification: Notification) -> Sequence[Envelope]:
    lead_id = str(event.originator_id)
    if isinstance(event, Ownership.Claimed):
        claimed = LeadClaimed(
            lead_id=lead_id,
            rep_id=event.rep_id,
            how=event.how,
            protected_until=event.protected_until,
            assigned_by=event.assigned_by,
        )
        return [
            envelope_of(
                event,
                claimed,
                service=SERVICE,
                time=event.claimed_at,
                correlation_id=event.correlation_id,
                causation_id=event.causation_id,
            )
        ]
    if isinstance(event, Ownership.Released):
        released = LeadReleased(
            lead_id=lead_id,
            rep_id=event.rep_id,
            reason=event.reason,
            cooldown_until=event.cooldown_until,
            released_by=event.released_by,
        )
        return [envelope_of(event, released, service=SERVICE, time=event.released_at, correlation_id=event.correlation_id)]
    return []
