"""The Lead aggregate: one per normalised phone number, so a phone can only ever be captured once.

No I/O here: time, actors and the scoring rules come in as parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.intake.scoring import ScoreCard, ScoringRules

LEAD_NAMESPACE = UUID("0b7f2f0e-54c7-4a8c-9f43-1f6a0de9a3c1")
PROFILE_FIELDS = ("email", "wechat", "company", "title", "industry", "region", "company_size", "needs")


def lead_id_for_phone(phone_e164: str) -> UUID:
    """The lead's identity is its E.164 phone number: the same phone always maps to the same id."""
    return uuid5(LEAD_NAMESPACE, phone_e164)


class UnknownSignal(ValueError):
    """A behaviour signal the scoring rules do not know; ``known`` are the ones they do."""

    def __init__(self, signal: str, known: list[str]) -> None:
        super().__init__(signal)
        self.known = known


_NOT_WORD = re.compile(r"[\W_]+")


def _folded(text: str) -> str:
    return _NOT_WORD.sub("", text.casefold())


@dataclass(frozen=True)
class NewLead:
    """A lead as a channel submitted it, validated and normalised (see ``services.intake.capture``)."""

    phone: str
    name: str
    source: str
    captured_by: str
    profile: dict[str, Any] = field(default_factory=dict)  # PROFILE_FIELDS plus ``contacts`` and ``tags``
    reported_by: str | None = None
    import_fingerprint: str | None = None  # the CSV row's content hash: a re-imported row is not a new attempt

    lead_id: UUID = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lead_id", lead_id_for_phone(self.phone))  # uuid5 is not free; batches ask often

    def match_keys(self) -> list[str]:
        """Keys that make another lead a *possible* duplicate: same WeChat, same email, same company + name."""
        keys = []
        wechat, email, company = self.profile.get("wechat"), self.profile.get("email"), self.profile.get("company")
        if wechat and wechat != self.phone:
            keys.append(f"wechat:{wechat}")
        if email:
            keys.append(f"email:{email}")
        if company and _folded(company) and _folded(self.name):
            keys.append(f"company+name:{_folded(company)}|{_folded(self.name)}")
        return keys


class Lead(Aggregate):
    """A captured lead: its profile, its score and grade, its behaviour signals, every channel it arrived through."""

    @staticmethod
    def create_id(phone: str, **_: Any) -> UUID:
        return lead_id_for_phone(phone)

    @classmethod
    def capture(
        cls,
        new: NewLead,
        rules: ScoringRules,
        *,
        possible_duplicates: list[str],
        now: datetime,
        correlation_id: str | None = None,
    ) -> Lead:
        card = rules.evaluate(new.profile, {})
        return cls(
            phone=new.phone,
            name=new.name,
            source=new.source,
            profile=new.profile,
            score=card.score,
            grade=card.grade,
            reasons=card.reasons,
            possible_duplicates=possible_duplicates,
            captured_by=new.captured_by,
            reported_by=new.reported_by,
            import_fingerprint=new.import_fingerprint,
            captured_at=now,
            correlation_id=correlation_id,
        )

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
        reasons: list[dict[str, Any]],
        possible_duplicates: list[str],
        captured_by: str,
        reported_by: str | None,
        import_fingerprint: str | None,
        captured_at: datetime,
        correlation_id: str | None = None,
    ) -> None:
        self.phone = phone
        self.name = name
        self.source = source
        self.profile = profile
        self.score = score
        self.grade = grade
        self.reasons = reasons
        self.possible_duplicates = possible_duplicates
        self.captured_by = captured_by
        self.reported_by = reported_by
        self.captured_at = captured_at
        self.recaptures: list[dict[str, Any]] = []
        self.signals: dict[str, int] = {}
        self.import_fingerprints: set[str] = {import_fingerprint} if import_fingerprint else set()

    def recapture(self, new: NewLead, *, now: datetime, correlation_id: str | None = None) -> bool:
        """Record another attempt to capture this phone; False when it is the replay of an imported row."""
        if new.import_fingerprint is not None and new.import_fingerprint in self.import_fingerprints:
            return False
        self._recaptured(
            source=new.source,
            captured_by=new.captured_by,
            import_fingerprint=new.import_fingerprint,
            recaptured_at=now,
            correlation_id=correlation_id,
        )
        return True

    @event("Recaptured")
    def _recaptured(
        self,
        *,
        source: str,
        captured_by: str,
        import_fingerprint: str | None,
        recaptured_at: datetime,
        correlation_id: str | None = None,
    ) -> None:
        self.recaptures.append({"source": source, "captured_by": captured_by, "at": recaptured_at})
        if import_fingerprint:
            self.import_fingerprints.add(import_fingerprint)

    def record_signal(
        self, signal: str, rules: ScoringRules, *, recorded_by: str, now: datetime, correlation_id: str | None = None
    ) -> ScoreCard:
        """A behaviour signal re-scores the lead; the event says which rules make up the new score."""
        if signal not in rules.signals:
            raise UnknownSignal(signal, sorted(rules.signals))
        counts = {**self.signals, signal: self.signals.get(signal, 0) + 1}
        card = rules.evaluate(self.profile, counts)
        self._scored(
            signal=signal,
            score=card.score,
            grade=card.grade,
            reasons=card.reasons,
            previous_score=self.score,
            previous_grade=self.grade,
            recorded_by=recorded_by,
            scored_at=now,
            correlation_id=correlation_id,
        )
        return card

    @event("Scored")
    def _scored(
        self,
        *,
        signal: str,
        score: int,
        grade: str,
        reasons: list[dict[str, Any]],
        previous_score: int,
        previous_grade: str,
        recorded_by: str,
        scored_at: datetime,
        correlation_id: str | None = None,
    ) -> None:
        self.signals[signal] = self.signals.get(signal, 0) + 1
        self.score, self.grade, self.reasons = score, grade, reasons
