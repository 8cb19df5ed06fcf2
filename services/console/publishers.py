"""The explicit mapping from the directory's recorded events to the public directory events.

A password change is the console's own business and is never published. Ids derive from the recorded
event, so a re-publication after a crash carries the same CloudEvents ``id``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from services.console import SERVICE
from services.console.domain import User
from shared.events import DirectoryPayload, Envelope, RepDeactivated, RepJoined, RepReactivated, TeamChanged
from shared.relay import IntegrationMapping, envelope_of


def _payload(event: DomainEventProtocol, username: str) -> DirectoryPayload | None:
    e: object = event
    match e:
        case User.Joined():
            return RepJoined(
                rep_id=username,
                display_name=e.display_name,
                role=e.role,
                team=e.team,
                manager=e.manager,
                email=e.email,
                phone=e.phone,
                joined_by=e.by,
            )
        case User.Deactivated():
            return RepDeactivated(rep_id=username, deactivated_by=e.by)
        case User.Reactivated():
            return RepReactivated(rep_id=username, reactivated_by=e.by)
        case User.TeamChanged():
            return TeamChanged(rep_id=username, team=e.team, manager=e.manager, changed_by=e.by)
    return None


def integration_mapping(username_of: Callable[[UUID], str | None]) -> IntegrationMapping:
    """The relay's mapping; ``username_of`` names the person of an aggregate id (the ids are one-way hashes)."""

    def to_integration_events(event: DomainEventProtocol, notification: Notification) -> Sequence[Envelope]:
        if not isinstance(event, User.Event):
            return []
        username = event.username if isinstance(event, User.Joined) else username_of(event.originator_id)  # type: ignore[attr-defined]
        payload = _payload(event, username) if username else None
        if payload is None:
            return []
        return [envelope_of(event, payload, service=SERVICE, time=event.at)]  # type: ignore[attr-defined]

    return to_integration_events
