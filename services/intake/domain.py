"""The Lead aggregate: one per normalised phone number, so a phone can only ever be captured once."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

LEAD_NAMESPACE = UUID("0b7f2f0e-54c7-4a8c-9f43-1f6a0de9a3c1")


def lead_id_for_phone(phone_e164: str) -> UUID:
    """The lead's identity is its E.164 phone number: the same phone always maps to the same id."""
    return uuid5(LEAD_NAMESPACE, phone_e164)


class Lead(Aggregate):
    """A captured lead: its profile, its score and grade, and every channel it arrived through."""

    @staticmethod
    def create_id(phone: str, **_: Any) -> UUID:
        return lead_id_for_phone(phone)

    @event("Captured")
    def __init__(
        self,
        *,
        phone: str,
        name: str,
        source: str,
        profile: dict[str, Any],
        score: int,
        grade: str,
        captured_by: str,
        reported_by: str | None,
        captured_at: datetime,
        correlation_id: str | None = None,
    ) -> None:
        self.phone = phone
        self.name = name
        self.source = source
        self.profile = profile
        self.score = score
        self.grade = grade
        self.captured_by = captured_by
        self.reported_by = reported_by
        self.captured_at = captured_at
        self.recaptures: list[dict[str, Any]] = []

    @event("Recaptured")
    def record_recapture(
        self, *, source: str, captured_by: str, recaptured_at: datetime, correlation_id: str | None = None
    ) -> None:
        self.recaptures.append({"source": source, "captured_by": captured_by, "at": recaptured_at})
