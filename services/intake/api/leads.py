"""One lead at a time: capture, read, behaviour signals."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request

from services.intake import SERVICE
from services.intake.api.http import JSON_BODY, App, Capturer, Reader, Settings
from services.intake.api.schemas import CaptureOut, LeadOut, ScoreOut, SignalIn
from services.intake.app import Contention, Duplicate, LeadNotFound
from services.intake.capture import ClaimNotAllowed, InvalidLead, LeadIn, prepare
from services.intake.domain import UnknownSignal
from shared.logs import correlation_id
from shared.metrics import COMMANDS
from shared.problems import Problem, validation_problem
from shared.service import Now

router = APIRouter(tags=["leads"])

CONFLICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "A lead with this phone exists; the problem's `lead_id` names it"},
    413: {"description": "Body too large"},
    415: {"description": "Not application/json"},
    422: {"description": "Invalid fields (`errors: [{field, message}]`)"},
}


def busy(exc: Contention) -> Problem:
    return Problem(503, "contention", f"{exc}; try again.", headers={"Retry-After": "1"})


@router.post(
    "/leads",
    status_code=201,
    response_model=CaptureOut,
    summary="Capture a lead (409 if its phone is already a lead)",
    dependencies=[JSON_BODY],
    responses=CONFLICT_RESPONSES,
)
async def capture_lead(body: LeadIn, settings: Settings, principal: Capturer, request: Request) -> CaptureOut:
    try:
        new = prepare(body, default_region=settings.default_region, captured_by=principal.sub, role=principal.role)
    except ClaimNotAllowed as exc:
        raise Problem(403, "claim-not-allowed", exc.errors[0]["message"]) from None
    except InvalidLead as exc:
        COMMANDS.labels(SERVICE, "capture", "invalid").inc()
        raise validation_problem(exc.errors) from None
    try:
        outcome = await request.app.state.coalescer.capture(new, correlation_id.get())
    except Contention as exc:
        raise busy(exc) from None
    if isinstance(outcome, Duplicate):
        COMMANDS.labels(SERVICE, "capture", "duplicate").inc()
        raise Problem(409, "duplicate-lead", "A lead with this phone number exists.", lead_id=str(outcome.lead_id))
    COMMANDS.labels(SERVICE, "capture", "created").inc()
    return CaptureOut(
        lead_id=outcome.lead_id, score=outcome.score, grade=outcome.grade, possible_duplicates=outcome.possible_duplicates
    )


@router.get("/leads/{lead_id}", response_model=LeadOut, summary="A captured lead, its score and possible duplicates")
def get_lead(lead_id: UUID, app: App, principal: Reader) -> LeadOut:
    lead = app.get_lead(lead_id)
    if lead is None:
        raise Problem(404, "lead-not-found", f"No lead {lead_id}.")
    return LeadOut.of(lead, app.possible_duplicates_of(lead))


@router.post(
    "/leads/{lead_id}/signals",
    response_model=ScoreOut,
    summary="Record a behaviour signal; the lead is re-scored",
    dependencies=[JSON_BODY],
)
def record_signal(lead_id: UUID, body: SignalIn, app: App, principal: Capturer, now: Now) -> ScoreOut:
    signal = body.signal.strip()
    try:
        rescored = app.record_signal(lead_id, signal, recorded_by=principal.sub, now=now, correlation_id=correlation_id.get())
    except LeadNotFound:
        raise Problem(404, "lead-not-found", f"No lead {lead_id}.") from None
    except UnknownSignal:
        known = ", ".join(sorted(app.rules.signals))
        raise validation_problem([{"field": "signal", "message": f"unknown signal; known signals: {known}"}]) from None
    except Contention as exc:
        raise busy(exc) from None
    COMMANDS.labels(SERVICE, "signal", "scored").inc()
    return ScoreOut(
        lead_id=lead_id,
        signal=signal,
        score=rescored.card.score,
        grade=rescored.card.grade,
        previous_score=rescored.previous_score,
        previous_grade=rescored.previous_grade,
        reasons=rescored.card.reasons,
    )
