"""Following the topic live: one consumer per serving instance, picked up when a replay promotes one."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from psycopg_pool import ConnectionPool

from services.analytics import SERVICE
from services.analytics.catalog import Catalog, Instance
from services.analytics.config import AnalyticsSettings
from services.analytics.tracking import InstanceWriter
from shared.consumer import TopicConsumer

log = logging.getLogger(__name__)


def instance_consumer(
    settings: AnalyticsSettings, writer: InstanceWriter, batch_size: int, partitions: list[int] | None = None
) -> TopicConsumer:
    """A consumer that applies the topic to the writer's instance; its group is the instance's, so the
    service and a replay CLI following the same instance share the partitions instead of doubling the work.
    With ``partitions`` it reads just those, outside the group (a replay's workers)."""
    return TopicConsumer(
        service=SERVICE,
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topic,
        group_id=f"{settings.consumer_group(SERVICE)}-{writer.instance.name}",
        load_positions=writer.load_positions,
        handle_batch=writer.handle_batch,
        batch_size=batch_size,
        partitions=partitions,
    )


class Followers:
    """Keeps every serving instance up to date; re-reads the catalog every ``catalog_poll_interval``."""

    def __init__(self, settings: AnalyticsSettings, pool: ConnectionPool, catalog: Catalog) -> None:
        self.settings = settings
        self.pool = pool
        self.catalog = catalog
        self._stop = asyncio.Event()
        self._running: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        self.consumers: dict[str, TopicConsumer] = {}

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                serving = {instance.name: instance for instance in await asyncio.to_thread(self.catalog.serving_instances)}
                for name, instance in serving.items():
                    if name not in self._running:
                        stop = asyncio.Event()
                        self._running[name] = (stop, asyncio.create_task(self._follow(instance, stop), name=f"follow-{name}"))
                for name in [n for n in self._running if n not in serving]:
                    await self._halt(name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.catalog_poll_interval.total_seconds())
        finally:
            for name in list(self._running):
                await self._halt(name)

    async def _halt(self, name: str) -> None:
        stop, task = self._running.pop(name)
        stop.set()
        consumer = self.consumers.get(name)
        if consumer is not None:
            consumer.stop()
        await task
        log.info("stopped following instance", extra={"instance": name})

    async def _follow(self, instance: Instance, stop: asyncio.Event) -> None:
        """Apply the topic to ``instance`` until told to stop, restarting the consumer after a failure."""
        delay = 0.5
        while not stop.is_set():
            writer = InstanceWriter(self.pool, instance, self.settings.topic)
            consumer = instance_consumer(self.settings, writer, self.settings.consumer_batch_size)
            self.consumers[instance.name] = consumer
            try:
                await consumer.start()
                log.info("following instance", extra={"instance": instance.name, "projections": instance.projection_names})
                await consumer.run()
                return
            except Exception:
                log.exception("instance consumer failed; restarting", extra={"instance": instance.name})
                with contextlib.suppress(Exception):
                    await consumer.consumer.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 15)
            finally:
                self.consumers.pop(instance.name, None)
