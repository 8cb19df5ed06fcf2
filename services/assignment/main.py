"""assignment's composition root: build the event store, read model, relay, projector, consumer and
scheduler, wire them into the HTTP app, and run it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.assignment import SERVICE
from services.assignment.api import install_routes
from services.assignment.app import AssignmentApplication, eventstore_env
from services.assignment.config import AssignmentSettings, load_assignment_rules
from services.assignment.policies import DIRECTORY, UpstreamPolicy, handled
from services.assignment.projections import Projector
from services.assignment.publishers import to_integration_events
from services.assignment.readmodel import ReadModel
from services.assignment.recycling import Recycler
from services.assignment.turns import LeadTurns
from shared.catchup import CatchUp, OwnWrites
from shared.clock import Clock, system_clock
from shared.consumer import PartitionBatch
from shared.deadletters.tracked import tracked_consumer
from shared.events import LEAD_EVENT_TYPES
from shared.eventstore import ensure_schema, read_model_pool, tracked_batch_handler
from shared.positions import Positions, TopicPositions
from shared.projector import projector_worker
from shared.relay import OutboxRelay
from shared.scheduler import Ticker
from shared.service import create_service_app, serve


def build_app(settings: AssignmentSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or AssignmentSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        routing = load_assignment_rules(settings.assignment_rules)
        rules = settings.ownership_rules()
        await asyncio.to_thread(ensure_schema, settings, SERVICE)
        assignment = await asyncio.to_thread(AssignmentApplication, eventstore_env(settings, SERVICE), rules)
        pool = read_model_pool(settings.database_url, settings.db_pool_size)
        await asyncio.to_thread(pool.open, True, 30)
        readmodel = ReadModel(pool, SERVICE)
        await asyncio.to_thread(readmodel.create_tables)
        projectors: list[Projector] = []
        # Kept across worker restarts: requests wait on how far the consumer and the projector got.
        consumed, projected = TopicPositions(), Positions()

        def nudge() -> None:  # the relay wakes by itself at each commit (it listens for them)
            for projector in projectors:
                projector.nudge()

        project = projector_worker(
            Projector,
            assignment,
            readmodel,
            service=SERVICE,
            worker="projector",
            settings=settings,
            positions=projected,
            current=projectors,
        )

        policy = UpstreamPolicy(rules, routing, clock)
        apply_batch = tracked_batch_handler(assignment, settings.topic, policy, policy.aggregate_ids)

        def handle_batch(batches: list[PartitionBatch]) -> int:
            # A partition with nothing to apply is left out (no transaction at all when none has any):
            # its stored position stays behind until its next relevant batch, so a restart re-reads (and
            # again ignores) at most these events.
            relevant = [batch._replace(delivered=events) for batch in batches if (events := handled(batch.delivered))]
            if not relevant:
                return 0
            applied = apply_batch(relevant)
            if applied:
                nudge()
            return applied

        consumer = tracked_consumer(
            assignment,
            service=SERVICE,
            settings=settings,
            apply=policy,
            aggregate_ids=policy.aggregate_ids,
            handle_batch=handle_batch,
            positions=consumed,
            types=LEAD_EVENT_TYPES | DIRECTORY,
        )

        recycler = Recycler(assignment, readmodel, clock, batch_size=settings.scheduler_batch_size, on_recorded=nudge)
        app.state.assignment, app.state.readmodel = assignment, readmodel
        app.state.nudge = nudge
        app.state.catch_up = CatchUp.configured(consumed, settings)
        app.state.own_writes = OwnWrites(
            assignment.recorder.max_notification_id, projected, nudge, timeout=settings.catch_up_timeout.total_seconds()
        )
        app.state.turns = LeadTurns()
        workers = app.state.workers
        workers.start("relay", OutboxRelay.worker(assignment, SERVICE, settings, to_integration_events))
        workers.start("projector", project)
        workers.start("consumer", consumer)
        workers.start("recycling", Ticker.worker("recycling", settings.scheduler_tick, recycler.tick))
        try:
            yield  # the shell stops the workers (the relay flushes) before this resumes
        finally:
            await asyncio.to_thread(pool.close)
            assignment.close()

    app = create_service_app(
        service=SERVICE,
        title="LeadFlow assignment",
        description="Ownership of leads: claims (报备), protection, the public pool (公海), recycling, automatic assignment.",
        settings=settings,
        lifespan=lifespan,
        clock=clock,
    )
    install_routes(app)
    return app


def main() -> None:
    settings = AssignmentSettings()
    serve(build_app(settings), settings.host, settings.assignment_port)
