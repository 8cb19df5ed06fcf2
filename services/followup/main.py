"""followup's composition root: build the application, its read model, relay, consumer and scheduler; run them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.followup import SERVICE
from services.followup.api import router
from services.followup.app import FollowupApplication
from services.followup.config import FollowupSettings
from services.followup.domain.cadence import RecyclePolicy, Rules
from services.followup.due_watch import DueWatch
from services.followup.escalation import load_escalation
from services.followup.policies import UpstreamPolicy
from services.followup.publishers import to_integration_events
from services.followup.sop import load_sop
from services.followup.task_board import TaskBoard, TaskBoardProjector
from shared.catchup import CatchUp, OwnWrites
from shared.clock import Clock, system_clock
from shared.deadletters.tracked import tracked_consumer
from shared.eventstore import ensure_schema, eventsourcing_env
from shared.positions import Positions, TopicPositions
from shared.projector import projector_worker
from shared.relay import OutboxRelay
from shared.scheduler import Ticker
from shared.service import create_service_app, serve


def rules_from(settings: FollowupSettings) -> Rules:
    recycle = RecyclePolicy(settings.first_contact_sla, settings.follow_up_sla, settings.recycle_reminder_lead)
    return Rules(load_sop(settings.sop_config), recycle)


def build_app(settings: FollowupSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or FollowupSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rules = rules_from(settings)  # a broken SOP or teams file stops the start with a clear error
        escalation = load_escalation(settings.teams_config, settings.escalation_manager)
        await asyncio.to_thread(ensure_schema, settings, SERVICE)
        followup = await asyncio.to_thread(FollowupApplication, eventsourcing_env(settings, SERVICE), rules)
        board = TaskBoard(settings.database_url, SERVICE)
        await asyncio.to_thread(board.ensure_tables)
        projectors: list[TaskBoardProjector] = []
        # Kept across worker restarts: requests wait on how far the consumer and the task board got.
        consumed, projected = TopicPositions(), Positions()

        def nudge() -> None:
            for projector in projectors:
                projector.nudge()

        followup.on_recorded(nudge)
        policy = UpstreamPolicy(rules)

        task_board = projector_worker(
            TaskBoardProjector,
            followup,
            board,
            service=SERVICE,
            worker="task-board",
            settings=settings,
            positions=projected,
            current=projectors,
        )

        consumer = tracked_consumer(
            followup, service=SERVICE, settings=settings, apply=policy, aggregate_ids=policy.aggregate_ids, positions=consumed
        )
        watch = DueWatch(followup, board, escalation, clock, settings.due_batch_size)
        app.state.followup, app.state.board = followup, board
        app.state.catch_up = CatchUp.configured(consumed, settings)
        app.state.own_writes = OwnWrites(
            followup.recorder.max_notification_id, projected, nudge, timeout=settings.catch_up_timeout.total_seconds()
        )
        workers = app.state.workers
        workers.start("relay", OutboxRelay.worker(followup, SERVICE, settings, to_integration_events))
        workers.start("task-board", task_board)
        workers.start("consumer", consumer)
        workers.start("due-watch", Ticker.worker("followup-due", settings.scheduler_tick, watch.tick))
        try:
            yield  # the shell stops the workers (the relay publishes what is recorded) before this resumes
        finally:
            board.close()
            followup.close()

    app = create_service_app(
        service=SERVICE,
        title="LeadFlow followup",
        description="Follow-up records, pipeline stages, SOP cadence, tasks and reminders, overdue escalation.",
        settings=settings,
        lifespan=lifespan,
        clock=clock,
    )
    app.include_router(router)
    return app


def main() -> None:
    settings = FollowupSettings()
    serve(build_app(settings), settings.host, settings.followup_port)
