"""The Rep aggregate: the leads one rep owns. Every claim saves it together with the lead's
Ownership, so concurrent claims by one rep serialise on it and the open-lead limit holds exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.assignment.domain.errors import ClaimLimitReached, RepInactive, RepOffboarded, RepUnknown

REP_NAMESPACE = UUID("3c9b8d4e-2f61-4e0a-9b7d-8a5e1c2f6d30")


def rep_aggregate_id(rep_id: str) -> UUID:
    return uuid5(REP_NAMESPACE, rep_id)


class Rep(Aggregate):
    """One rep's leads (``open`` or ``closed``) and whether the rep has been offboarded."""

    @staticmethod
    def create_id(rep_id: str, **_: Any) -> UUID:
        return rep_aggregate_id(rep_id)

    @event("Registered")
    def __init__(self, *, rep_id: str) -> None:
        self.rep_id = rep_id
        self.leads: dict[str, str] = {}
        self.offboarded = False
        # What the people directory said of the rep: None (nothing yet), True (active), False (deactivated).
        self.listed: bool | None = None

    @property
    def open_leads(self) -> int:
        return sum(1 for state in self.leads.values() if state == "open")

    def has_room(self, limit: int) -> bool:
        return not self.offboarded and self.listed is not False and self.open_leads < limit

    def take(self, lead_id: str, *, open_lead: bool, limit: int) -> None:
        if self.offboarded:
            raise RepOffboarded(self.rep_id)
        if self.listed is False:
            raise RepInactive(self.rep_id)
        if open_lead and self.open_leads >= limit:
            raise ClaimLimitReached(self.rep_id, limit)
        self._took(lead_id=lead_id, state="open" if open_lead else "closed")

    @event("Took")
    def _took(self, *, lead_id: str, state: str) -> None:
        self.leads[lead_id] = state

    def give_up(self, lead_id: str) -> None:
        if lead_id in self.leads:
            self._gave_up(lead_id=lead_id)

    @event("GaveUp")
    def _gave_up(self, *, lead_id: str) -> None:
        del self.leads[lead_id]

    def lead_closed(self, lead_id: str) -> None:
        """A won or lost lead no longer counts against the limit (it stays the rep's customer)."""
        if self.leads.get(lead_id) == "open":
            self._lead_closed(lead_id=lead_id)

    @event("LeadClosed")
    def _lead_closed(self, *, lead_id: str) -> None:
        self.leads[lead_id] = "closed"

    def check_assignable(self, *, directory_required: bool) -> None:
        """Before a manager gives this rep leads: the directory must not have deactivated them (nor, when it is
        required, never have announced them)."""
        if self.listed is False:
            raise RepInactive(self.rep_id)
        if directory_required and self.listed is None:
            raise RepUnknown(self.rep_id)

    def listed_in_directory(self, active: bool) -> None:
        """The directory announced the rep (joined, reactivated: active) or deactivated them."""
        if self.listed is not active:
            self._listed(active=active)

    @event("Listed")
    def _listed(self, *, active: bool) -> None:
        self.listed = active

    def offboard(self, *, at: datetime, offboarded_by: str) -> None:
        """From now on the rep can take no lead; idempotent, so an interrupted offboarding can be retried."""
        if not self.offboarded:
            self._offboarded(at=at, offboarded_by=offboarded_by)

    @event("Offboarded")
    def _offboarded(self, *, at: datetime, offboarded_by: str) -> None:
        self.offboarded = True
