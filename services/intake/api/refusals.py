"""The one place where what intake refuses becomes a problem (its kind counted as the command's outcome)."""

from __future__ import annotations

from services.intake import SERVICE
from services.intake.app import LeadNotFound
from services.intake.capture import ClaimNotAllowed, InvalidLead
from services.intake.csv_rows import InvalidCsv
from services.intake.domain import UnknownSignal
from shared.problems import Problem, Refusals, validation_problem

REFUSALS = Refusals(
    SERVICE,
    {
        ClaimNotAllowed: lambda exc: Problem(403, "claim-not-allowed", exc.errors[0]["message"]),
        InvalidLead: lambda exc: validation_problem(exc.errors),
        LeadNotFound: lambda exc: Problem(404, "lead-not-found", f"No lead {exc}."),
        UnknownSignal: lambda exc: validation_problem(
            [{"field": "signal", "message": f"unknown signal; known signals: {', '.join(exc.known)}"}]
        ),
        InvalidCsv: lambda exc: validation_problem(exc.errors, "The file cannot be imported."),
    },
)
