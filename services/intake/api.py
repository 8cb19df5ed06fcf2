"""intake's HTTP API: translate requests, call the application, map outcomes to responses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator

from services.intake.app import Duplicate, IntakeApplication
from services.intake.normalise import InvalidPhone, normalise_phone, normalise_text
from shared.auth import Principal, require_roles
from shared.events import Contact
from shared.logs import correlation_id
from shared.problems import Problem, validation_problem

router = APIRouter()

Capturer = Annotated[Principal, require_roles("rep", "manager", "admin", "integration")]
Reader = Annotated[Principal, require_roles("rep", "manager", "admin", "integration")]


class LeadIn(BaseModel):
    """A lead as a channel submits it."""

    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40)
    source: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    wechat: str | None = Field(default=None, max_length=100)
    company: str | None = Field(default=None, max_length=300)
    title: str | None = Field(default=None, max_length=200)
    industry: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    company_size: str | None = Field(default=None, max_length=50)
    needs: str | None = Field(default=None, max_length=5000)
    contacts: list[Contact] = Field(default_factory=list, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=50)
    claim: bool = Field(default=False, description="A rep reports (报备) the lead for themself.")

    @field_validator("name", "source")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        text = normalise_text(value)
        if not text:
            raise ValueError("must not be blank")
        return text


class CaptureOut(BaseModel):
    lead_id: UUID
    score: int
    grade: str


def intake_app(request: Request) -> IntakeApplication:
    return request.app.state.intake


App = Annotated[IntakeApplication, Depends(intake_app)]


@router.post("/leads", status_code=201, response_model=CaptureOut, tags=["leads"])
def capture_lead(body: LeadIn, app: App, principal: Capturer, request: Request) -> CaptureOut:
    settings = request.app.state.settings
    try:
        phone = normalise_phone(body.phone, settings.default_region)
    except InvalidPhone as exc:
        raise validation_problem([{"field": "phone", "message": str(exc)}]) from exc
    profile: dict[str, Any] = {
        key: normalise_text(getattr(body, key))
        for key in ("email", "wechat", "company", "title", "industry", "region", "company_size", "needs")
    }
    profile["contacts"] = [c.model_dump() for c in body.contacts]
    profile["tags"] = body.tags
    reported_by = principal.sub if body.claim and principal.role == "rep" else None
    outcome = app.capture(
        phone=phone,
        name=body.name,
        source=body.source,
        profile=profile,
        score=0,
        grade="C",
        captured_by=principal.sub,
        reported_by=reported_by,
        now=datetime.now(UTC),
        correlation_id=correlation_id.get(),
    )
    request.app.state.relay.nudge()
    if isinstance(outcome, Duplicate):
        raise Problem(409, "duplicate-lead", "A lead with this phone number exists.", lead_id=str(outcome.lead_id))
    return CaptureOut(lead_id=outcome.lead_id, score=outcome.score, grade=outcome.grade)


@router.get("/leads/{lead_id}", tags=["leads"])
def get_lead(lead_id: UUID, app: App, principal: Reader) -> dict[str, Any]:
    lead = app.get_lead(lead_id)
    if lead is None:
        raise Problem(404, "lead-not-found", f"No lead {lead_id}.")
    return {
        "lead_id": str(lead.id),
        "name": lead.name,
        "phone": lead.phone,
        "source": lead.source,
        **lead.profile,
        "score": lead.score,
        "grade": lead.grade,
        "captured_by": lead.captured_by,
        "reported_by": lead.reported_by,
        "captured_at": lead.captured_at,
        "recaptures": lead.recaptures,
    }
