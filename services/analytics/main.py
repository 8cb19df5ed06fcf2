"""analytics' composition root: the database pool, the catalog, the live followers and the HTTP app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.analytics import SERVICE
from services.analytics.api import router
from services.analytics.catalog import Catalog
from services.analytics.config import AnalyticsSettings
from services.analytics.consumers import Followers
from services.analytics.queries import Queries
from shared.eventstore import read_model_pool
from shared.service import create_service_app, serve


def build_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = read_model_pool(settings.database_url, settings.db_pool_size)
        await asyncio.to_thread(pool.open, True, 30)
        catalog = Catalog(pool, settings.analytics_schema)
        await asyncio.to_thread(catalog.ensure_serving)
        followers = Followers(settings, pool, catalog, app.state.workers)
        app.state.queries, app.state.followers = Queries(pool, settings.analytics_schema), followers
        app.state.workers.start("followers", followers.worker)
        try:
            yield  # the shell stops the workers (each consumer finishes its batch) before this resumes
        finally:
            await asyncio.to_thread(pool.close)

    app = create_service_app(
        service=SERVICE,
        title="LeadFlow analytics",
        description="Read models over the event log: customer 360 (also as of a moment), funnel, response time, leaderboard.",
        settings=settings,
        lifespan=lifespan,
    )
    app.include_router(router)
    return app


def main() -> None:
    settings = AnalyticsSettings()
    serve(build_app(settings), settings.host, settings.analytics_port)
