"""intake's event-sourced application: capture (one or many), behaviour signals, and reads of Lead aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from services.intake.domain import Lead, NewLead
from services.intake.scoring import ScoreCard, ScoringRules
from services.intake.store import IntakeRecorder
from shared.eventstore import EventSourcedApplication
from shared.retry import COMMAND_RACES, GaveUp

# Concurrent recaptures of one lead conflict on its version; each retry reloads. Writers are serialised by
# the event store's table lock, so a few dozen contenders resolve well within these attempts.


@dataclass(frozen=True)
class Captured:
    lead_id: UUID
    score: int
    grade: str
    possible_duplicates: list[str]


@dataclass(frozen=True)
class Duplicate:
    lead_id: UUID


Outcome = Captured | Duplicate


@dataclass(frozen=True)
class Rescored:
    previous_score: int
    previous_grade: str
    card: ScoreCard


class LeadNotFound(LookupError):
    pass


class Contention(RuntimeError):
    """A write kept losing to concurrent writes of the same lead; nothing was recorded."""


class IntakeApplication(EventSourcedApplication):
    name = "intake"
    recorder: IntakeRecorder

    def __init__(self, env: dict[str, str], rules: ScoringRules) -> None:
        super().__init__(env=env)
        self.rules = rules

    def capture(self, new: NewLead, *, now: datetime, correlation_id: str | None = None) -> Outcome:
        return self.capture_many([new], now=now, correlation_id=correlation_id)[0]

    def capture_many(
        self,
        leads: Sequence[NewLead],
        *,
        now: datetime,
        correlation_id: str | None = None,
        correlation_ids: Sequence[str | None] | None = None,
    ) -> list[Outcome]:
        """Capture leads in order, in one event-store transaction unless a concurrent writer interferes.

        A phone seen before (in the store or earlier in ``leads``) is a duplicate: the attempt is recorded
        on the existing lead, unless it replays a CSV row already recorded. If the one transaction loses a
        race (another request captured one of these phones, or recaptured one of these leads, meanwhile),
        each lead is captured on its own, so the race is resolved per phone and nothing is recorded twice.
        """
        causes = list(correlation_ids) if correlation_ids is not None else [correlation_id] * len(leads)
        try:
            return self._capture_together(leads, now, causes)
        except IntegrityError:
            return [self._capture_alone(new, now, cause) for new, cause in zip(leads, causes, strict=True)]

    def _capture_alone(self, new: NewLead, now: datetime, correlation_id: str | None) -> Outcome:
        try:
            return COMMAND_RACES.call(lambda: self._capture_together([new], now, [correlation_id])[0])
        except GaveUp:
            raise Contention(f"could not record the capture of lead {new.lead_id}") from None

    def _capture_together(self, leads: Sequence[NewLead], now: datetime, causes: Sequence[str | None]) -> list[Outcome]:
        keys_of = [new.match_keys() for new in leads]
        known = self.recorder.known(
            {new.lead_id for new in leads},
            {key for keys in keys_of for key in keys},
            {new.import_fingerprint for new in leads if new.import_fingerprint},
        )
        existing, matches, replayed = known.leads, known.matches, known.imported_rows
        created: dict[UUID, Lead] = {}
        recaptured: dict[UUID, Lead] = {}
        lead_keys: list[tuple[str, UUID]] = []
        import_rows: list[tuple[str, UUID]] = []
        outcomes: list[Outcome] = []
        for new, keys, correlation_id in zip(leads, keys_of, causes, strict=True):
            lead_id = new.lead_id
            if new.import_fingerprint in replayed:
                outcomes.append(Duplicate(lead_id))
                continue
            lead = created.get(lead_id) or recaptured.get(lead_id)
            if lead is None and lead_id in existing:
                lead = recaptured[lead_id] = self.repository.get(lead_id)
            if lead is not None:
                if lead.recapture(new, now=now, correlation_id=correlation_id) and new.import_fingerprint:
                    import_rows.append((new.import_fingerprint, lead_id))
                outcomes.append(Duplicate(lead_id))
                continue
            possible = sorted({str(other) for key in keys for other in matches.get(key, ()) if other != lead_id})
            lead = created[lead_id] = Lead.capture(
                new, self.rules, possible_duplicates=possible, now=now, correlation_id=correlation_id
            )
            for key in keys:
                matches.setdefault(key, set()).add(lead_id)
                lead_keys.append((key, lead_id))
            if new.import_fingerprint:
                import_rows.append((new.import_fingerprint, lead_id))
            outcomes.append(Captured(lead_id, lead.score, lead.grade, possible))
        if created or recaptured:
            self.save(*created.values(), *recaptured.values(), lead_keys=lead_keys, import_rows=import_rows)
        return outcomes

    def record_signal(
        self, lead_id: UUID, signal: str, *, recorded_by: str, now: datetime, correlation_id: str | None = None
    ) -> Rescored:
        """Re-score a lead for a behaviour signal; raises LeadNotFound, UnknownSignal or Contention."""

        def attempt() -> Rescored:
            lead: Lead | None = self.get_or_none(lead_id)
            if lead is None:
                raise LeadNotFound(lead_id)
            previous = lead.score, lead.grade
            card = lead.record_signal(signal, self.rules, recorded_by=recorded_by, now=now, correlation_id=correlation_id)
            self.save(lead)
            return Rescored(*previous, card)

        try:
            return COMMAND_RACES.call(attempt)
        except GaveUp:
            raise Contention(f"could not record the signal for lead {lead_id}") from None

    def get_lead(self, lead_id: UUID) -> Lead | None:
        return self.get_or_none(lead_id)

    def possible_duplicates_of(self, lead: Lead) -> list[dict[str, Any]]:
        """Leads sharing a WeChat id, email or company + name with this one, captured before or after it."""
        related = self.recorder.related_leads(lead.id)
        return [{"lead_id": str(other), "matched_on": kinds} for other, kinds in related.items()]
