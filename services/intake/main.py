"""intake's composition root: build the clients, the relay and the HTTP app; run them."""

from __future__ import annotations

import asyncio
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
from shared.clock import system_clock
from shared.eventstore import ensure_schema, eventsourcing_env
from shared.relay import OutboxRelay, build_producer
from shared.service import create_service_app, serve


def build_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rules = load_scoring_rules(settings.scoring_rules)
        await asyncio.to_thread(ensure_schema, settings, SERVICE)
        env = eventsourcing_env(settings, SERVICE, PROCESS_RECORDER_TOPIC=get_topic(IntakeRecorder))
        intake = await asyncio.to_thread(IntakeApplication, env, rules)
        producer = build_producer(settings.kafka_bootstrap)
        await producer.start()
        relay = OutboxRelay.for_service(intake, SERVICE, producer, settings, to_integration_events)
        coalescer = CaptureCoalescer(intake, system_clock)
        coalescer.start()
        app.state.intake, app.state.producer, app.state.relay, app.state.coalescer = intake, producer, relay, coalescer
        app.state.workers.start("relay", relay.run, relay.stop)
        try:
            yield  # the shell stops the workers (and so flushes the relay) before this resumes
        finally:
            await asyncio.to_thread(coalescer.stop)
            await producer.stop()
            intake.close()

    app = create_service_app(
        service=SERVICE,
        title="LeadFlow intake",
        description="Capture, normalise, de-duplicate, score and grade leads.",
        settings=settings,
        lifespan=lifespan,
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


def main() -> None:
    settings = IntakeSettings()
    serve(build_app(settings), settings.host, settings.intake_port)
