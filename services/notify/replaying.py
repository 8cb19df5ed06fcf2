"""Running replays: each one a supervised worker (``replay-<id>``) reading the whole topic into one subscription."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg_pool import ConnectionPool

from services.notify import SERVICE
from services.notify.config import NotifySettings
from services.notify.store.replays import ReplayWriter
from services.notify.store.subscriptions import Subscriptions
from services.notify.store.tables import Tables
from shared.clock import Clock
from shared.consumer import TopicConsumer
from shared.events import PAYLOADS
from shared.supervisor import Supervisor, WorkerHealth
from shared.topics import topic_partitions

log = logging.getLogger(__name__)


class ReplayRun:
    """A consumer of every partition for one replay, which stops itself once the replay is done."""

    def __init__(self, consumer: TopicConsumer, writer: ReplayWriter, check_every: float = 0.5) -> None:
        self.consumer = consumer
        self.writer = writer
        self.check_every = check_every
        self._watch: asyncio.Task[None] | None = None

    async def _watch_done(self) -> None:
        while not await asyncio.to_thread(self.writer.finish_if_done):
            await asyncio.sleep(self.check_every)
        self.consumer.stop()

    async def run(self) -> None:
        self._watch = asyncio.create_task(self._watch_done())
        try:
            await self.consumer.run()
        finally:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch

    def stop(self) -> None:
        self.consumer.stop()


class Replays:
    """Looks for running replays (asked for through the API, maybe by another replica) and runs each once."""

    def __init__(
        self,
        settings: NotifySettings,
        pool: ConnectionPool,
        tables: Tables,
        subscriptions: Subscriptions,
        workers: Supervisor,
        clock: Clock,
        poll_interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.t = tables
        self.subscriptions = subscriptions
        self.workers = workers
        self.clock = clock
        self.poll_interval = poll_interval
        self.wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._running: set[UUID] = set()
        self.health: WorkerHealth | None = None

    def worker(self, health: WorkerHealth) -> Replays:
        """How the supervisor runs the look for replays (the same object on every start: it holds what runs)."""
        self.health = health
        return self

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

    async def end_offsets(self) -> dict[int, int]:
        """Where every partition ends now: what a replay asked for now reads up to."""
        partitions = await topic_partitions(self.settings.kafka_bootstrap, self.settings.topic)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(self.settings.topic, p) for p in partitions])
        finally:
            await consumer.stop()
        return {tp.partition: offset for tp, offset in ends.items()}

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                for replay in await asyncio.to_thread(self.subscriptions.running_replays):
                    if replay["id"] not in self._running:
                        self._running.add(replay["id"])
                        self.workers.start(f"replay-{replay['id']}", self._build(replay))
                for rid in list(self._running):
                    state = await asyncio.to_thread(self.subscriptions.replay, rid)
                    if state is None or state["state"] != "running":
                        self._running.discard(rid)
                        await self.workers.halt(f"replay-{rid}")
                        log.info("replay finished", extra={"replay": str(rid), "state": state and state["state"]})
                if self.health is not None:
                    self.health.progressed()
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_interval)
        finally:
            for rid in list(self._running):
                await self.workers.halt(f"replay-{rid}")

    def _build(self, replay: dict) -> Callable[[WorkerHealth], ReplayRun]:
        ends = {int(p): int(o) for p, o in replay["ends"].items()}

        def build(health: WorkerHealth) -> ReplayRun:
            writer = ReplayWriter(
                self.pool, self.t, replay["id"], replay["subscription_id"], replay["from_time"], replay["types"], ends, self.clock
            )
            consumer = TopicConsumer(
                service=SERVICE,
                bootstrap=self.settings.kafka_bootstrap,
                topic=self.settings.topic,
                group_id=f"{self.settings.consumer_group(SERVICE)}-replay-{replay['id']}",
                load_positions=writer.load_positions,
                handle_batch=writer.handle_batch,
                worker=f"replay-{replay['id']}",
                dead_letters=writer,
                batch_size=self.settings.consumer_batch_size,
                partitions=sorted(ends),
                health=health,
                types=PAYLOADS.keys(),
            )
            return ReplayRun(consumer, writer)

        return build
