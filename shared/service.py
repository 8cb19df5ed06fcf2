"""The HTTP shell every service shares: problem errors, identity, health, readiness, metrics, logs,
and supervised background workers (relay, consumers, schedulers) tied to the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import logs
from shared.config import ServiceSettings
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.problems import Problem, install_problem_handlers, problem_response
from shared.runtime import freeze_start_up
from shared.text import text_error

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]


class Workers:
    """Long-running coroutines of one service; each restarts with back-off if it crashes."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stoppers: list[Callable[[], None]] = []

    def start(self, name: str, factory: Callable[[], Awaitable[None]], stop: Callable[[], None] | None = None) -> None:
        self._tasks[name] = asyncio.create_task(self._supervise(name, factory), name=name)
        if stop is not None:
            self._stoppers.append(stop)

    async def _supervise(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        delay = 0.5
        while True:
            started = time.monotonic()
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker crashed; restarting", extra={"worker": name})
                if time.monotonic() - started > 30:
                    delay = 0.5
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15)

    async def stop(self, timeout: float = 15.0) -> None:
        """Ask every worker to finish what it holds, then wait; cancel what does not finish in time."""
        for stop in self._stoppers:
            stop()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks.values(), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


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


def postgres_check(settings: ServiceSettings) -> ReadinessCheck:
    async def check() -> None:
        async with await psycopg.AsyncConnection.connect(settings.database_url, connect_timeout=3) as conn:
            await conn.execute("SELECT 1")

    check.__name__ = "postgresql"
    return check


def kafka_check(producer_of: Callable[[], AIOKafkaProducer | None], topic: str) -> ReadinessCheck:
    async def check() -> None:
        producer = producer_of()
        if producer is None:
            raise RuntimeError("Kafka producer not started")
        partitions = await asyncio.wait_for(producer.partitions_for(topic), 3)
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions")

    check.__name__ = "kafka"
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
) -> FastAPI:
    """A FastAPI app with everything a LeadFlow service exposes besides its own routes.

    Readiness defaults to: PostgreSQL answers, and the producer the lifespan put on ``app.state.producer``
    sees the topic.
    """
    if readiness is None:

        def readiness(app: FastAPI) -> list[ReadinessCheck]:
            return [
                postgres_check(settings),
                kafka_check(lambda: getattr(app.state, "producer", None), settings.topic),
            ]

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.configure_logging(service, settings.log_level)
        app.state.workers = Workers()
        async with lifespan(app):
            freeze_start_up()
            yield
            # Workers (relay, consumers) finish while the clients they use are still open.
            await app.state.workers.stop()

    # FastAPI's OpenTelemetry hooks are off: the services report through Prometheus (/metrics), and
    # the hooks look up the OpenTelemetry providers on every request.
    no_telemetry = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=app_lifespan, telemetry=no_telemetry)
    app.state.settings = settings
    app.state.service = service
    install_problem_handlers(app)

    app.add_middleware(ObserveRequests, service=service)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], summary="Kafka and PostgreSQL connections work")
    async def readyz() -> JSONResponse:
        failures = {}
        for check in readiness(app):
            try:
                await check()
            except Exception as exc:
                failures[check.__name__] = str(exc) or type(exc).__name__
        if failures:
            problem = Problem(503, "not-ready", "; ".join(failures.values()), checks=failures)
            return problem_response(problem, None)
        return JSONResponse({"status": "ready", "service": service})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
