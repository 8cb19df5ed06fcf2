"""analytics' composition root: the database pool, the catalog, the live followers and the HTTP app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from services.analytics import SERVICE
from services.analytics.api import router
from services.analytics.catalog import Catalog
from services.analytics.config import AnalyticsSettings
from services.analytics.consumers import Followers
from services.analytics.queries import Queries
from shared.service import ReadinessCheck, create_service_app, postgres_check, serve


def kafka_check(app: FastAPI, topic: str) -> ReadinessCheck:
    """analytics produces nothing, so it asks the broker for the topic with an admin client."""

    async def check() -> None:
        admin: AIOKafkaAdminClient | None = getattr(app.state, "kafka_admin", None)
        if admin is None:
            raise RuntimeError("Kafka admin client not started")
        topics = await asyncio.wait_for(admin.list_topics(), 3)
        if topic not in topics:
            raise RuntimeError(f"topic {topic} does not exist")

    check.__name__ = "kafka"
    return check


def build_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = ConnectionPool(settings.database_url, min_size=1, max_size=settings.db_pool_size, open=False)
        await asyncio.to_thread(pool.open, True, 30)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        catalog = Catalog(pool, settings.analytics_schema)
        await asyncio.to_thread(catalog.ensure_serving)
        followers = Followers(settings, pool, catalog)
        app.state.queries, app.state.followers, app.state.kafka_admin = Queries(pool, settings.analytics_schema), followers, admin
        app.state.workers.start("followers", followers.run, followers.stop)
        try:
            yield  # the shell stops the workers (each consumer finishes its batch) before this resumes
        finally:
            await admin.close()
            await asyncio.to_thread(pool.close)

    app = create_service_app(
        service=SERVICE,
        title="LeadFlow analytics",
        description="Read models over the event log: customer 360 (also as of a moment), funnel, response time, leaderboard.",
        settings=settings,
        lifespan=lifespan,
        readiness=lambda app: [postgres_check(settings), kafka_check(app, settings.topic)],
    )
    app.include_router(router)
    return app


def main() -> None:
    settings = AnalyticsSettings()
    serve(build_app(settings), settings.host, settings.analytics_port)
