"""The shapes intake answers with (the request shapes live in ``services.intake.capture``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from shared.text import SingleLine


class FieldError(BaseModel):
    field: str
    message: str


class CaptureOut(BaseModel):
    """A lead was created."""

    lead_id: UUID
    score: int
    grade: Literal["A", "B", "C"]
    possible_duplicates: list[UUID] = Field(description="Other leads with the same WeChat, email, or company + name")


class BatchItemOut(BaseModel):
    """The outcome of one batch item, at the item's position."""

    status: Literal["created", "duplicate", "invalid"]
    lead_id: UUID | None = None
    score: int | None = None
    grade: Literal["A", "B", "C"] | None = None
    possible_duplicates: list[UUID] | None = None
    errors: list[FieldError] | None = None


class InvalidRow(BaseModel):
    row: int = Field(description="Row number as a spreadsheet shows it: the header is row 1")
    errors: list[FieldError]


class ImportOut(BaseModel):
    """What became of a CSV file's rows."""

    created: int
    duplicates: int
    invalid: list[InvalidRow]
    rows: int = Field(description="Data rows read (blank rows are skipped)")
    ignored_columns: list[str] = Field(description="Header cells that are not a lead field")


class SignalIn(BaseModel):
    """A behaviour signal, e.g. ``viewed_pricing``, ``downloaded_whitepaper``, ``attended_webinar``, ``requested_demo``."""

    signal: SingleLine = Field(min_length=1, max_length=100, examples=["requested_demo"])


class Reason(BaseModel):
    rule: str
    matched: str
    points: int
    times: int | None = None


class ScoreOut(BaseModel):
    lead_id: UUID
    signal: str
    score: int
    grade: Literal["A", "B", "C"]
    previous_score: int
    previous_grade: Literal["A", "B", "C"]
    reasons: list[Reason]


class ContactOut(BaseModel):
    name: str
    role: str
    phone: str | None = None
    email: str | None = None


class PossibleDuplicate(BaseModel):
    lead_id: UUID
    matched_on: list[str] = Field(description="wechat, email, company+name")


class Recapture(BaseModel):
    source: str
    captured_by: str
    at: datetime


class LeadOut(BaseModel):
    """A captured lead as intake holds it."""

    lead_id: UUID
    name: str
    phone: str
    source: str
    email: str | None = None
    wechat: str | None = None
    company: str | None = None
    title: str | None = None
    industry: str | None = None
    region: str | None = None
    company_size: str | None = None
    needs: str | None = None
    contacts: list[ContactOut]
    tags: list[str]
    score: int
    grade: Literal["A", "B", "C"]
    score_reasons: list[Reason]
    signals: dict[str, int]
    captured_by: str
    reported_by: str | None
    captured_at: datetime
    recaptures: list[Recapture]
    possible_duplicates: list[PossibleDuplicate]

    @classmethod
    def of(cls, lead: Any, possible_duplicates: list[dict[str, Any]]) -> LeadOut:
        return cls(
            lead_id=lead.id,
            name=lead.name,
            phone=lead.phone,
            source=lead.source,
            **lead.profile,
            score=lead.score,
            grade=lead.grade,
            score_reasons=lead.reasons,
            signals=lead.signals,
            captured_by=lead.captured_by,
            reported_by=lead.reported_by,
            captured_at=lead.captured_at,
            recaptures=lead.recaptures,
            possible_duplicates=possible_duplicates,
        )
