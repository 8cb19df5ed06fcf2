"""intake's event-sourced application: commands and queries over Lead aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from services.intake.domain import Lead, lead_id_for_phone
from shared.eventstore import EventSourcedApplication


@dataclass(frozen=True)
class Captured:
    lead_id: UUID
    score: int
    grade: str


@dataclass(frozen=True)
class Duplicate:
    lead_id: UUID


class IntakeApplication(EventSourcedApplication):
    name = "intake"

    def capture(
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
        now: datetime,
        correlation_id: str | None = None,
    ) -> Captured | Duplicate:
        lead = Lead(
            phone=phone,
            name=name,
            source=source,
            profile=profile,
            score=score,
            grade=grade,
            captured_by=captured_by,
            reported_by=reported_by,
            captured_at=now,
            correlation_id=correlation_id,
        )
        try:
            self.save(lead)
        except IntegrityError:
            # The phone is already a lead: the unique (id, version 1) row made this atomic.
            self._record_recapture(lead.id, source, captured_by, now, correlation_id)
            return Duplicate(lead.id)
        return Captured(lead.id, score, grade)

    def _record_recapture(self, lead_id: UUID, source: str, captured_by: str, now: datetime, correlation_id: str | None) -> None:
        for _ in range(5):
            existing: Lead = self.repository.get(lead_id)
            existing.record_recapture(source=source, captured_by=captured_by, recaptured_at=now, correlation_id=correlation_id)
            try:
                self.save(existing)
                return
            except IntegrityError:
                continue

    def get_lead(self, lead_id: UUID) -> Lead | None:
        return self.get_or_none(lead_id)

    @staticmethod
    def lead_id_for(phone: str) -> UUID:
        return lead_id_for_phone(phone)
