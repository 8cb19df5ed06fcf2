"""The HTTP shell every service shares: problem errors, identity, health, readiness, metrics, logs,
and supervised background workers (relay, consumers, schedulers) tied to the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import psycopg
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import logs
from shared.clock import Clock, system_clock
from shared.config import ServiceSettings, refuse_foreign_settings
from shared.idempotency import IdempotencyKeys
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.problems import Problem, install_problem_handlers, problem_response
from shared.runtime import freeze_start_up
from shared.supervisor import Supervisor
from shared.text import text_error

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]


def request_clock(request: Request) -> Clock:
    return request.app.state.clock


def request_now(request: Request) -> datetime:
    return request.app.state.clock()


# A route's "now", from the service's clock (tests pass a fake one to build_app).
AppClock = Annotated[Clock, Depends(request_clock)]
Now = Annotated[datetime, Depends(request_now)]


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run a service's app: SIGTERM drains in-flight requests (20 s), then the lifespan stops the workers."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        # libuv's loop and the C HTTP parser: the pure-Python h11 parser and asyncio loop cost
        # more CPU per request than most of a service's own handlers.
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=20,
        # Longer than the usual load balancer and client idle timeouts, so a client's pooled
        # connection is not closed under it just as it sends a request.
        timeout_keep_alive=75,
        backlog=2048,
    )


# A readiness probe answers within the orchestrator's timeout even while a dependency hangs.
CHECK_TIMEOUT = 2.0


def postgres_check(settings: ServiceSettings) -> ReadinessCheck:
    async def check() -> None:
        async with asyncio.timeout(CHECK_TIMEOUT):
            async with await psycopg.AsyncConnection.connect(settings.database_url, connect_timeout=2) as conn:
                await conn.execute("SELECT 1")

    check.__name__ = "postgresql"
    return check


class KafkaProbe:
    """Asks the broker itself (a metadata request, not a client's cached metadata) whether the topic is there."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._admin: AIOKafkaAdminClient | None = None

    async def __call__(self) -> None:
        async with asyncio.timeout(CHECK_TIMEOUT):
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
                await admin.start()
                self._admin = admin
            try:
                topics = await self._admin.list_topics()
            except Exception:
                await self.close()  # a fresh client next time, rather than one stuck on a dead connection
                raise
        if self.topic not in topics:
            raise RuntimeError(f"topic {self.topic} does not exist")

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()


def kafka_check(app: FastAPI) -> ReadinessCheck:
    """The probe the shell keeps on ``app.state.kafka_probe`` (opened lazily, closed with the app)."""

    async def check() -> None:
        await app.state.kafka_probe()

    check.__name__ = "kafka"
    return check


def workers_check(app: FastAPI) -> ReadinessCheck:
    async def check() -> None:
        problems = app.state.workers.problems()
        if problems:
            raise RuntimeError("; ".join(f"{name} {why}" for name, why in sorted(problems.items())))

    check.__name__ = "workers"
    return check


class ObserveRequests:
    """Correlation id, request count and latency per route, as a plain ASGI middleware (cheap per request)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # The count and latency series per (method, route, status), looked up once: ``labels()``
        # validates and locks on every call, costing more than the observations themselves.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-correlation-id"), None)
        if not cid or text_error(cid) is not None:  # recorded in every event the request causes: a new one instead
            cid = str(uuid.uuid4())
        token = logs.correlation_id.set(cid)
        started = time.perf_counter()
        status = 500  # unless a response starts: an unhandled error is answered (500) further out

        async def send_with_correlation(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-correlation-id", cid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_correlation)
        finally:
            logs.correlation_id.reset(token)
            count, latency = self._series_of(scope["method"], getattr(scope.get("route"), "path", "unmatched"), status)
            count.inc()
            latency.observe(time.perf_counter() - started)

    def _series_of(self, method: str, path: str, status: int) -> tuple[Any, Any]:
        key = (method, path, status)
        series = self._series.get(key)
        if series is None:
            count = HTTP_REQUESTS.labels(self.service, method, path, str(status))
            series = self._series[key] = (count, HTTP_LATENCY.labels(self.service, method, path))
        return series


def create_service_app(
    *,
    service: str,
    title: str,
    settings: ServiceSettings,
    lifespan: Callable[[FastAPI], Any],
    readiness: Callable[[FastAPI], list[ReadinessCheck]] | None = None,
    description: str = "",
    schema: str | None = None,
    clock: Clock = system_clock,
) -> FastAPI:
    """A FastAPI app with everything a LeadFlow service exposes besides its own routes.

    ``clock``: where every request reads "now" (the one clock of the service, passed in from its edge).
    ``schema``: the service's own database schema (default: its name), where idempotency keys are kept.
    Readiness is: the checks ``readiness`` names (default: PostgreSQL answers, and the broker has the
    topic), and always every worker on ``app.state.workers`` working.
    """
    if readiness is None:

        def readiness(app: FastAPI) -> list[ReadinessCheck]:
            return [postgres_check(settings), kafka_check(app)]

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.configure_logging(service, settings.log_level)
        refuse_foreign_settings(os.environ)
        app.state.workers = Supervisor(service, rules=settings.worker_health_rules())
        app.state.kafka_probe = KafkaProbe(settings.kafka_bootstrap, settings.topic)
        try:
            async with lifespan(app):
                freeze_start_up()
                yield
                # Workers (relay, consumers) finish while the clients they use are still open.
                await app.state.workers.stop()
        finally:
            await app.state.kafka_probe.close()

    # FastAPI's OpenTelemetry hooks are off: the services report through Prometheus (/metrics), and
    # the hooks look up the OpenTelemetry providers on every request.
    no_telemetry = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=app_lifespan, telemetry=no_telemetry)
    app.state.settings = settings
    app.state.clock = clock
    app.state.service = service
    install_problem_handlers(app)

    # Inside request observation (its answers are counted and correlated like any other) and inside any
    # body limits a service adds afterwards (a body is limited before it is buffered here).
    app.add_middleware(
        IdempotencyKeys, database_url=settings.database_url, schema=schema or service, jwt_secret=settings.jwt_secret
    )
    app.add_middleware(ObserveRequests, service=service)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], summary="Kafka and PostgreSQL connections work")
    async def readyz() -> JSONResponse:
        failures = {}
        for check in [*readiness(app), workers_check(app)]:
            try:
                await check()
            except Exception as exc:
                failures[check.__name__] = str(exc) or type(exc).__name__
        if failures:
            detail = "; ".join(f"{name}: {why}" for name, why in failures.items())
            problem = Problem(503, "not-ready", detail, checks=failures, headers={"Retry-After": "5"})
            return problem_response(problem, None)
        return JSONResponse({"status": "ready", "service": service})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
