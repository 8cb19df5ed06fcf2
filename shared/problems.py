"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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

from shared.metrics import COMMANDS
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


def contended(exc: GaveUp) -> Problem:
    """A command lost every race for the same aggregate (version conflicts): nothing recorded, try again."""
    return Problem(503, "contended", "Too many concurrent changes to this lead; try again.", headers={"Retry-After": "1"})


# How one kind of refusal becomes a problem: a status and the problem type's kind, or a function for
# refusals whose answer carries more (a member such as ``cooldown_until``, field errors).
Rule = tuple[int, str] | Callable[[Any], "Problem"]


class Refusals:
    """The one place a service says how what its domain refuses becomes a problem, and counts the outcome
    of each command (``leadflow_commands_total{outcome}``: ``ok`` or the refusal's kind).

    Rules are looked up along the exception's class hierarchy, so a base class can stand for its family.
    A command that lost every version race (:class:`shared.retry.GaveUp`) is 503 ``contended`` everywhere."""

    def __init__(self, service: str, rules: Mapping[type[BaseException], Rule]) -> None:
        self.service = service
        self.rules: dict[type[BaseException], Rule] = {GaveUp: contended, **rules}
        self.refused = tuple(self.rules)
        # One series per (command, outcome), looked up once: ``labels()`` validates and locks on every call,
        # which costs more than a claim answered from memory.
        self._counters: dict[tuple[str, str], Any] = {}

    def problem(self, exc: BaseException) -> Problem:
        for cls in type(exc).__mro__:
            rule = self.rules.get(cls)
            if rule is not None:
                if isinstance(rule, tuple):
                    status, kind = rule
                    return Problem(status, kind, str(exc))
                return rule(exc)
        raise LookupError(f"no rule for {type(exc).__name__}")

    def refuse(self, command: str, exc: BaseException) -> Problem:
        """The problem answering ``exc``, counted as the command's outcome."""
        problem = self.problem(exc)
        self.count(command, problem.kind)
        return problem

    def count(self, command: str, outcome: str) -> None:
        counter = self._counters.get((command, outcome))
        if counter is None:
            counter = self._counters[(command, outcome)] = COMMANDS.labels(self.service, command, outcome)
        counter.inc()

    @contextmanager
    def command(self, name: str) -> Iterator[None]:
        """Run a command: a refusal in the table is raised as its problem; success counts ``ok``."""
        try:
            yield
        except self.refused as exc:
            raise self.refuse(name, exc) from exc
        self.count(name, "ok")


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

    async def on_contended(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GaveUp)  # a command that did not go through a Refusals table
        return problem_response(contended(exc), request)

    async def on_outage(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable", extra={"error": repr(exc), "path": request.scope["path"]})
        return problem_response(unavailable(), request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):  # an outage wrapped in another error
            return await on_outage(request, exc)
        log.error("unexpected error", exc_info=exc, extra={"path": request.scope["path"]})
        return problem_response(Problem(500, "internal-error", "An unexpected error occurred."), request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # Handled by class, inside the app: an error reaching the outermost (catch-all) handler is answered but
    # then re-raised to the server, which closes the connection, and a client's next request on it fails.
    app.add_exception_handler(GaveUp, on_contended)
    for outage in OUTAGE_ERRORS:
        app.add_exception_handler(outage, on_outage)
    app.add_exception_handler(Exception, on_unexpected)
