"""Who acts, what a contact with the customer reports, and which reports fit together (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.followup.domain.errors import InvalidFollowUp
from services.followup.domain.pipeline import is_open
from shared.events import Channel, Stage


@dataclass(frozen=True)
class Actor:
    actor_id: str
    supervisor: bool = False


@dataclass(frozen=True)
class Contact:
    """One contact with the customer as the rep reports it."""

    channel: Channel
    summary: str
    pain_points: str | None = None
    objections: str | None = None
    next_step: str | None = None
    next_follow_up_at: datetime | None = None
    stage: Stage | None = None
    tags: tuple[str, ...] = ()
    won_amount: float | None = None
    currency: str | None = None
    lost_reason: str | None = None


@dataclass(frozen=True)
class Logged:
    """A recorded contact and the stage it left the lead in."""

    follow_up_id: str
    stage: Stage


def check_contact(contact: Contact, before: Stage, target: Stage, at: datetime) -> None:
    """Raise :class:`InvalidFollowUp` for a report that does not fit the move it makes."""
    becomes = target if target != before else None
    if contact.next_follow_up_at is not None:
        if contact.next_follow_up_at <= at:
            raise InvalidFollowUp("next_follow_up_at", "must be in the future")
        if not is_open(target):
            raise InvalidFollowUp("next_follow_up_at", f"a {target} lead has no next follow-up")
    if becomes == "lost" and not (contact.lost_reason and contact.lost_reason.strip()):
        raise InvalidFollowUp("lost_reason", "is required when the lead becomes lost")
    if contact.lost_reason is not None and becomes != "lost":
        raise InvalidFollowUp("lost_reason", "is only accepted when the lead becomes lost")
    for name in ("won_amount", "currency"):
        if getattr(contact, name) is not None and becomes != "won":
            raise InvalidFollowUp(name, "is only accepted when the lead becomes won")
