"""HTTP plumbing of intake's routes: dependencies, content types, and request body limits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import Message
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from services.intake.app import IntakeApplication
from services.intake.config import IntakeSettings
from shared.auth import Principal, current_principal
from shared.problems import Problem, problem_response

# The dependencies below are ``async def`` on purpose: they do no I/O, and FastAPI runs every plain ``def``
# dependency in the thread pool, a hop that costs more than the work on a busy machine.


async def _any_role(request: Request) -> Principal:
    """Every role may capture and read leads (the contract); the token must still be valid (else 401)."""
    return current_principal(request)


Capturer = Annotated[Principal, Depends(_any_role)]
Reader = Capturer


async def _intake(request: Request) -> IntakeApplication:
    return request.app.state.intake


async def _settings(request: Request) -> IntakeSettings:
    return request.app.state.settings


App = Annotated[IntakeApplication, Depends(_intake)]
Settings = Annotated[IntakeSettings, Depends(_settings)]


def media_type(request: Request) -> tuple[str, dict[str, str]]:
    """The request's media type (lower case) and its parameters, e.g. ``("text/csv", {"charset": "gb18030"})``."""
    message = Message()
    message["content-type"] = request.headers.get("content-type", "")
    params = {key.lower(): value for key, value in message.get_params(failobj=[])[1:]}
    return message.get_content_type() if request.headers.get("content-type") else "", params


def require_media_types(*accepted: str) -> Any:
    """A dependency answering 415 unless the body has one of the accepted media types."""

    async def check(request: Request) -> None:
        kind, _ = media_type(request)
        if kind not in accepted:
            raise Problem(
                415,
                "unsupported-media-type",
                f"Send the body as {' or '.join(accepted)}, not {kind or 'no Content-Type'}.",
                accepted=list(accepted),
            )

    return Depends(check)


JSON_BODY = require_media_types("application/json")


class BodyLimits:
    """ASGI middleware: 413 for a request body larger than its route allows, before any of it is parsed.

    ``limits`` maps (method, path regex) to the largest body in bytes. A declared Content-Length
    over the limit is refused at once; a body sent without one is counted as it arrives.
    """

    def __init__(self, app: ASGIApp, limits: Sequence[tuple[str, str, int]]) -> None:
        self.app = app
        self.limits = [(method, re.compile(pattern), limit) for method, pattern, limit in limits]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._limit_for(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large(limit)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> AsgiMessage:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, f"The body is larger than {limit} bytes.")
            return message

        await self.app(scope, counting_receive, send)

    def _limit_for(self, scope: Scope) -> int | None:
        for method, pattern, limit in self.limits:
            if scope["method"] == method and pattern.fullmatch(scope["path"]):
                return limit
        return None


def too_large(limit: int) -> Any:
    return problem_response(Problem(413, "content-too-large", f"The body is larger than {limit} bytes.", limit=limit))
