"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import psycopg_pool
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.retry import GaveUp

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    StoreOperationalError,
    StoreInterfaceError,
    KafkaConnectionError,
    KafkaTimeoutError,
    ConnectionError,
    TimeoutError,
)
TYPE_PREFIX = "urn:leadflow:problem:"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Validation failed",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """Raise from anywhere in a request to answer with a problem document.

    ``kind`` becomes the problem ``type`` (``urn:leadflow:problem:<kind>``) so clients can tell
    e.g. a claim limit from a cooldown without parsing prose. ``extra`` adds members (e.g. ``lead_id``).
    """

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.errors = errors
        self.headers = headers
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


# Seconds a client is asked to wait before trying again while a dependency is down.
OUTAGE_RETRY_AFTER = 2


def is_outage(exc: BaseException) -> bool:
    """A failure that says PostgreSQL or Kafka could not be reached (or did not answer in time), not a bug."""
    return isinstance(exc, OUTAGE_ERRORS) or (exc.__cause__ is not None and isinstance(exc.__cause__, OUTAGE_ERRORS))


def unavailable() -> Problem:
    return Problem(
        503,
        "service-unavailable",
        "A service this request needs (the database or the message broker) is unavailable; try again shortly.",
        headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
    )


def validation_problem(errors: list[dict[str, str]], detail: str = "The request is invalid.") -> Problem:
    return Problem(422, "validation-error", detail, errors=errors)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(request.scope["path"] if request else None),  # request.url.path, without building the URL
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path", "header")]
        errors.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    """Route FastAPI's own errors (404s, validation, HTTPException) through problem documents too."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_problem(field_errors(exc)), request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = _TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        return problem_response(Problem(exc.status_code, kind, detail, headers=exc.headers), request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, GaveUp):  # lost every race for the same aggregate: nothing recorded, try again
            contended = Problem(
                409, "contended", "Too many concurrent changes to this lead; try again.", headers={"Retry-After": "1"}
            )
            return problem_response(contended, request)
        if is_outage(exc):
            log.warning("dependency unavailable", extra={"error": repr(exc), "path": request.scope["path"]})
            return problem_response(unavailable(), request)
        log.error("unexpected error", exc_info=exc, extra={"path": request.scope["path"]})
        return problem_response(Problem(500, "internal-error", "An unexpected error occurred."), request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
