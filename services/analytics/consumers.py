"""Following the topic live: one consumer per serving instance, picked up when a replay promotes one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from psycopg_pool import ConnectionPool

from services.analytics import SERVICE
from services.analytics.catalog import Catalog, Instance
from services.analytics.config import AnalyticsSettings
from services.analytics.tracking import InstanceWriter
from shared.consumer import TopicConsumer
from shared.deadletters import CONSUMER_REASONS, UNKNOWN_LEAD
from shared.positions import TopicPositions
from shared.supervisor import Supervisor, WorkerHealth

log = logging.getLogger(__name__)


def instance_consumer(
    settings: AnalyticsSettings,
    writer: InstanceWriter,
    batch_size: int,
    partitions: list[int] | None = None,
    health: WorkerHealth | None = None,
    positions: TopicPositions | None = None,
) -> TopicConsumer:
    """A consumer that applies the topic to the writer's instance; its group is the instance's, so the
    service and a replay CLI following the same instance share the partitions instead of doubling the work.
    With ``partitions`` it reads just those, outside the group (a replay's workers). Its worker name is
    the instance's (``instance-<name>``) in both, so either re-drives the instance's parked events."""
    return TopicConsumer(
        service=SERVICE,
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topic,
        group_id=f"{settings.consumer_group(SERVICE)}-{writer.instance.name}",
        load_positions=writer.load_positions,
        handle_batch=writer.handle_batch,
        worker=writer.worker,
        dead_letters=writer,
        reasons=(*CONSUMER_REASONS, UNKNOWN_LEAD),
        batch_size=batch_size,
        partitions=partitions,
        health=health,
        positions=positions,
    )


class Followers:
    """Keeps every serving instance up to date, one supervised consumer each (worker ``instance-<name>``);
    re-reads the catalog every ``catalog_poll_interval`` to follow what a replay promoted or retired."""

    def __init__(self, settings: AnalyticsSettings, pool: ConnectionPool, catalog: Catalog, workers: Supervisor) -> None:
        self.settings = settings
        self.pool = pool
        self.catalog = catalog
        self.workers = workers
        self._stop = asyncio.Event()
        self._following: set[str] = set()
        self._serves: dict[str, str] = {}  # projection → the instance serving it
        # How far each instance's consumer got, kept across its restarts (requests wait on it).
        self._positions: dict[str, TopicPositions] = {}
        self.health: WorkerHealth | None = None

    def worker(self, health: WorkerHealth) -> Followers:
        """How the supervisor runs the catalog poll (the same object on every start: it holds what it follows)."""
        self.health = health
        return self

    def positions_of(self, projection: str) -> TopicPositions | None:
        """How far the instance serving ``projection`` has applied the topic (None: nothing serves it here yet)."""
        instance = self._serves.get(projection)
        return self._positions.get(instance) if instance is not None else None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                serving = {instance.name: instance for instance in await asyncio.to_thread(self.catalog.serving_instances)}
                self._serves = await asyncio.to_thread(self.catalog.serving)
                for name, instance in serving.items():
                    if name not in self._following:
                        self._following.add(name)
                        self.workers.start(f"instance-{name}", self._consumer_of(instance))
                        log.info("following instance", extra={"instance": name, "projections": instance.projection_names})
                for name in [n for n in self._following if n not in serving]:
                    await self._halt(name)
                if self.health is not None:
                    self.health.progressed()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.catalog_poll_interval.total_seconds())
        finally:
            for name in list(self._following):
                await self._halt(name)

    def _consumer_of(self, instance: Instance) -> Callable[[WorkerHealth], TopicConsumer]:
        positions = self._positions.setdefault(instance.name, TopicPositions())

        def build(health: WorkerHealth) -> TopicConsumer:
            writer = InstanceWriter(self.pool, instance, self.settings.topic, self.settings.analytics_schema)
            return instance_consumer(self.settings, writer, self.settings.consumer_batch_size, health=health, positions=positions)

        return build

    async def _halt(self, name: str) -> None:
        self._following.discard(name)
        self._positions.pop(name, None)
        await self.workers.halt(f"instance-{name}")
        log.info("stopped following instance", extra={"instance": name})
