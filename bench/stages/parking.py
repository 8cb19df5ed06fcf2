"""Stage: what the parking machinery costs on the happy path, with vs without, in the same run.

The same topic of valid synthetic histories is consumed, in this process, by the shared consumer as the
services run it (every poll's handler call guarded: bounded retries, bisection and parking on failure;
a look for re-drive requests every 2 s) and by the same consumer with the guard taken out (the handler
called bare, no look for requests: the consumer as it was before parking). Rounds alternate, so a noisy
machine hits both alike; the cost is taken on the best round of each (the least disturbed by whatever
else runs on the machine), the median is shown too. Two shapes:

- replay-shaped: analytics' instance writer (customer 360 + funnel, batches of 5,000, all partitions), as
  ``python -m services.analytics.replay`` applies the topic; also without the captured-leads rule
  (``docs/analytics.md``), which is not parking but is on the same path;
- capture-shaped: followup's event-sourced consumer (tracked batch handler, the UpstreamPolicy) as it
  applies a burst of captures and claims.

Batch capture itself (``POST /leads/batch`` → published) runs no consumer: intake records and its relay
publishes; the parking machinery is only in the consumers that read what it published. Last, what the
guard adds per poll is timed directly, with a handler that does nothing (no broker, no database).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import NamedTuple

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from bench.context import Run
from bench.kafka_io import produce
from bench.results import StageResult
from bench.stats import rate
from bench.synthetic import history_envelopes
from services.analytics.catalog import Catalog
from services.analytics.tracking import InstanceWriter
from services.followup.app import FollowupApplication
from services.followup.config import FollowupSettings
from services.followup.main import rules_from
from services.followup.policies import UpstreamPolicy
from shared.consumer import REDRIVE_INTERVAL, PartitionBatch, TopicConsumer
from shared.deadletters import DeadLetterTable
from shared.deadletters.tracked import TrackedDeadLetters
from shared.events import encode, kafka_headers
from shared.eventstore import (
    ensure_schema,
    eventsourcing_env,
    tracked_batch_handler,
    tracked_partition_positions,
)
from shared.topics import topic_partitions

ROUNDS = 5
GUARD_POLLS = 100_000


class UnguardedConsumer(TopicConsumer):
    """The shared consumer without its parking: each poll goes to the handler bare, and it never looks
    for re-drive requests (what it was before parking, for the comparison)."""

    def _apply_poll(self, batches: list[PartitionBatch], rejected: list, records: dict) -> int:
        return self.handle_batch(batches)

    def _redrive_requested(self) -> None:
        return None


class WriterWithoutLeadRule(InstanceWriter):
    """analytics' writer without the captured-leads rule (every fact to every projection, as before it)."""

    def _apply(self, cur, facts) -> None:  # type: ignore[no-untyped-def]
        for projection in self.instance.projections:
            projection.apply(cur, self.instance.name, facts)


class Sample(NamedTuple):
    rate: float  # events/s, wall clock
    cpu_us: float  # this process's CPU time per event (the consumer's own work: decoding, the guard, the handler's Python)


async def consume(consumer: TopicConsumer, count: int, timeout: float) -> Sample:
    """From start until every partition was read to its end and applied: the rate, and this process's CPU
    per event (PostgreSQL's and Kafka's work is in their processes: the guard's cost, if any, is here)."""
    started, cpu = time.perf_counter(), time.process_time()
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_until_caught_up(timeout=timeout)
        return Sample(rate(count, time.perf_counter() - started), (time.process_time() - cpu) / count * 1e6)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 60)


def consumer_of(cls: type[TopicConsumer], run: Run, topic: str, partitions: list[int], **wiring) -> TopicConsumer:
    return cls(
        service="bench",
        bootstrap=run.env.kafka,
        topic=topic,
        group_id=f"{run.env.group_prefix}-parking-{uuid.uuid4().hex[:6]}",
        partitions=partitions,
        **wiring,
    )


async def replay_shaped(run: Run, topic: str, count: int, partitions: list[int], variant: str) -> Sample:
    schema = f"bench_parking_{uuid.uuid4().hex[:8]}"
    with ConnectionPool(run.env.database_url, min_size=1, max_size=4) as pool:
        catalog = Catalog(pool, schema)
        await asyncio.to_thread(catalog.ensure_catalog)
        instance = await asyncio.to_thread(catalog.create_instance, ["customer360", "funnel"])
        writer_class = WriterWithoutLeadRule if variant == "bare, without the lead rule" else InstanceWriter
        writer = writer_class(pool, instance, topic, schema)
        cls = TopicConsumer if variant == "guarded" else UnguardedConsumer
        consumer = consumer_of(
            cls,
            run,
            topic,
            partitions,
            load_positions=writer.load_positions,
            handle_batch=writer.handle_batch,
            worker=writer.worker,
            dead_letters=writer,
            batch_size=5000,
        )
        sample = await consume(consumer, count, timeout=max(120, count / 1000))
    await asyncio.to_thread(drop_schemas, run, schema)
    return sample


async def capture_shaped(run: Run, topic: str, count: int, partitions: list[int], variant: str) -> Sample:
    schema = f"bench_parking_{uuid.uuid4().hex[:8]}"
    settings = FollowupSettings(database_url=run.env.database_url)
    await asyncio.to_thread(ensure_schema, settings, schema)
    rules = rules_from(settings)
    app = await asyncio.to_thread(FollowupApplication, eventsourcing_env(settings, schema), rules)
    try:
        policy = UpstreamPolicy(rules)
        consumer = consumer_of(
            TopicConsumer if variant == "guarded" else UnguardedConsumer,
            run,
            topic,
            partitions,
            load_positions=tracked_partition_positions(app, topic),
            handle_batch=tracked_batch_handler(app, topic, policy, policy.aggregate_ids),
            worker="consumer",
            dead_letters=TrackedDeadLetters(app, topic, policy, policy.aggregate_ids),
            batch_size=settings.consumer_batch_size,
        )
        sample = await consume(consumer, count, timeout=max(120, count / 200))
    finally:
        app.close()
    await asyncio.to_thread(drop_schemas, run, schema)
    return sample


def drop_schemas(run: Run, prefix: str) -> None:
    with psycopg.connect(run.env.database_url, autocommit=True) as conn:
        names = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)).fetchall()
        for (name,) in names:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


async def compare(
    result: StageResult,
    label: str,
    measure: Callable[[str], object],
    variants: tuple[str, ...],
) -> dict[str, Sample]:
    """The best of each variant over :data:`ROUNDS` alternating rounds: highest rate, least CPU per event
    (the rounds least disturbed by whatever else runs on the machine); the figures show the medians too."""
    samples: dict[str, list[Sample]] = {variant: [] for variant in variants}
    for _ in range(ROUNDS):
        for variant in variants:
            samples[variant].append(await measure(variant))  # type: ignore[misc]
    best = {}
    for variant, runs in samples.items():
        rates, cpus = [r.rate for r in runs], [r.cpu_us for r in runs]
        best[variant] = Sample(max(rates), min(cpus))
        note = f"best of {ROUNDS}; median {statistics.median(rates):,.0f}; all: {', '.join(f'{r:,.0f}' for r in rates)}"
        result.add(f"{label}, {variant}", max(rates), "events/s", note=note)
        note = f"least of {ROUNDS}; median {statistics.median(cpus):.1f}; all: {', '.join(f'{c:.1f}' for c in cpus)}"
        result.add(f"{label}, {variant}: consumer CPU", min(cpus), "µs/event", note=note)
    return best


async def guard_cost_per_poll_us(run: Run) -> float:
    """Microseconds the guard adds to one poll's handler call (a handler that does nothing, no I/O)."""
    consumer = consumer_of(
        TopicConsumer,
        run,
        "bench.guard",
        [0],
        load_positions=lambda partitions: {},
        handle_batch=lambda batches: 0,
        worker="consumer",
        dead_letters=None,  # type: ignore[arg-type]  # never reached: nothing fails
    )
    batches = [PartitionBatch(0, [], 1)]
    started = time.perf_counter()
    for _ in range(GUARD_POLLS):
        consumer.handle_batch(batches)
    bare = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(GUARD_POLLS):
        consumer._apply_poll(batches, [], {})
    guarded = time.perf_counter() - started
    return (guarded - bare) / GUARD_POLLS * 1e6


def redrive_look_us(run: Run, looks: int = 200) -> float:
    """Microseconds of a consumer's look for re-drive requests (an indexed query on ``dead_letters``)."""
    schema = f"bench_parking_{uuid.uuid4().hex[:8]}"
    table = DeadLetterTable(schema)
    try:
        with psycopg.connect(run.env.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            table.create(conn)
            started = time.perf_counter()
            for _ in range(looks):
                table.requested(conn, "consumer")
            return (time.perf_counter() - started) / looks * 1e6
    finally:
        drop_schemas(run, schema)


async def run_stage(run: Run, result: StageResult) -> None:
    count = run.sizes.parking_events
    topic = await run.env.new_topic(f"{run.env.topic}.parking")
    records = ((e.subject.encode(), encode(e), kafka_headers(e)) for e in history_envelopes(count))
    await produce(run.env.kafka, topic, records, total=count, label=f"produce {count:,} synthetic events")
    partitions = await topic_partitions(run.env.kafka, topic)

    replay = await compare(
        result,
        f"replay-shaped {count:,} → 360 + funnel",
        lambda variant: replay_shaped(run, topic, count, partitions, variant),
        ("guarded", "bare", "bare, without the lead rule"),
    )
    capture = await compare(
        result,
        f"capture-shaped {count:,} → followup",
        lambda variant: capture_shaped(run, topic, count, partitions, variant),
        ("guarded", "bare"),
    )
    target = "target < 2 %; > 0 means slower with it"
    for shape, medians in (("replay-shaped", replay), ("capture-shaped", capture)):
        result.add(f"{shape}: parking cost, rate", cost(medians["guarded"].rate, medians["bare"].rate), "%", note=target)
        cpu = (medians["guarded"].cpu_us / medians["bare"].cpu_us - 1) * 100
        result.add(f"{shape}: parking cost, consumer CPU", cpu, "%", note=target)
    lead_rule = cost(replay["bare"].rate, replay["bare, without the lead rule"].rate)
    result.add("replay-shaped: captured-leads rule cost, rate", lead_rule, "%", note="not parking: analytics' rule for strays")
    per_poll = await guard_cost_per_poll_us(run)
    poll_us = 5000 / replay["bare"].rate * 1e6  # a replay-shaped poll, as measured above
    result.add(
        "guard per poll (no-op handler)", per_poll, "µs", note=f"{per_poll / poll_us * 100:.4f} % of a 5,000-event poll here"
    )
    look_us = await asyncio.to_thread(redrive_look_us, run)
    interval = REDRIVE_INTERVAL * 1e6
    result.add(
        "look for re-drive requests", look_us, "µs", note=f"once per {REDRIVE_INTERVAL:.0f} s: {look_us / interval * 100:.4f} %"
    )


def cost(with_it: float, without: float) -> float:
    """How much slower, in percent of the rate without."""
    return (1 - with_it / without) * 100
