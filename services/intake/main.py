"""intake's composition root: build the clients, the relay and the HTTP app; run them.

Two processes can share the work: the API (``python -m services.intake``) records captures, and the
outbox relay (``python -m services.intake relay``) publishes them, each on a core of its own. With
``LEADFLOW_INTAKE_EMBEDDED_RELAY`` left true, the API process also runs the relay (one process does all).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eventsourcing.utils import get_topic
from fastapi import FastAPI

from services.intake import SERVICE
from services.intake.api import router
from services.intake.api.http import BodyLimits
from services.intake.app import IntakeApplication
from services.intake.coalescer import CaptureCoalescer
from services.intake.config import IntakeSettings, load_scoring_rules
from services.intake.publishers import to_integration_events
from services.intake.store import IntakeRecorder
from shared.clock import Clock, system_clock
from shared.eventstore import ensure_schema, eventsourcing_env
from shared.relay import OutboxRelay
from shared.service import create_service_app, postgres_check, serve


async def open_intake(settings: IntakeSettings) -> IntakeApplication:
    rules = load_scoring_rules(settings.scoring_rules)
    await asyncio.to_thread(ensure_schema, settings, SERVICE)
    env = eventsourcing_env(settings, SERVICE, PROCESS_RECORDER_TOPIC=get_topic(IntakeRecorder))
    return await asyncio.to_thread(IntakeApplication, env, rules)


def build_app(settings: IntakeSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        intake = await open_intake(settings)
        coalescer = CaptureCoalescer(intake, clock)
        coalescer.start()
        app.state.intake, app.state.coalescer = intake, coalescer
        try:
            if settings.intake_embedded_relay:
                app.state.workers.start("relay", OutboxRelay.worker(intake, SERVICE, settings, to_integration_events))
            yield
        finally:
            await asyncio.to_thread(coalescer.stop)
            intake.close()

    app = create_service_app(
        service=SERVICE,
        title="LeadFlow intake",
        description="Capture, normalise, de-duplicate, score and grade leads.",
        settings=settings,
        lifespan=lifespan,
        clock=clock,
        # Without its relay the API process does not talk to Kafka; the relay process answers for that.
        readiness=None if settings.intake_embedded_relay else lambda app: [postgres_check(settings)],
    )
    app.include_router(router)
    app.add_middleware(
        BodyLimits,
        limits=[
            ("POST", "/leads", settings.intake_max_lead_bytes),
            ("POST", "/leads/batch", settings.intake_max_batch_bytes),
            ("POST", "/leads/[^/]+/signals", settings.intake_max_lead_bytes),
        ],
    )
    return app


def build_relay_app(settings: IntakeSettings | None = None) -> FastAPI:
    """The relay process: publishes what the API processes record; health, readiness and metrics only."""
    settings = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        intake = await open_intake(settings)
        app.state.workers.start("relay", OutboxRelay.worker(intake, SERVICE, settings, to_integration_events))
        try:
            yield
        finally:
            intake.close()

    return create_service_app(
        service=SERVICE,
        title="LeadFlow intake relay",
        description="Publishes the events intake recorded to Kafka, in order, at least once.",
        settings=settings,
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    """``python -m services.intake`` runs the API; ``python -m services.intake relay`` the relay process."""
    args = sys.argv[1:] if argv is None else argv
    settings = IntakeSettings()
    if args == ["relay"]:
        serve(build_relay_app(settings), settings.host, settings.intake_relay_port)
    elif not args:
        serve(build_app(settings), settings.host, settings.intake_port)
    else:
        sys.exit(f"usage: python -m services.intake [relay]; got {' '.join(args)!r}")
