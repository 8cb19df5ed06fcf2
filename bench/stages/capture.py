"""Stage 2: leads through intake: batch capture accepted → published on Kafka, and single-capture latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.clients import capture_batch, capture_one, created_ids
from bench.context import Run
from bench.kafka_io import TopicReader
from bench.progress import Progress, say
from bench.results import StageResult
from bench.server_metrics import settle
from bench.stats import percentile, rate

BATCH = 1_000  # the contract's maximum per POST /leads/batch
IN_FLIGHT = 2  # intake records one batch at a time; a second keeps it busy while the first answers


@dataclass(frozen=True)
class CaptureTiming:
    leads: int
    accepted_seconds: float  # first request → last response
    published_seconds: float  # first request → last LeadCaptured read back from the topic


async def post_batches(run: Run, count: int, label: str, on_created: Callable[[list[str]], None] = lambda ids: None) -> None:
    """Capture ``count`` new leads in batches, ``IN_FLIGHT`` at a time (leads are made as they are sent)."""
    remaining = [count]
    progress = Progress(label, count)

    async def worker(client: httpx.AsyncClient) -> None:
        while remaining[0] > 0:
            size = min(BATCH, remaining[0])
            remaining[0] -= size
            on_created(created_ids(await capture_batch(client, run.env, run.leads.leads(size))))
            run.captured += size
            progress.update(count - remaining[0])

    async with run.client(connections=IN_FLIGHT) as client:
        await asyncio.gather(*(worker(client) for _ in range(IN_FLIGHT)))
    progress.finish()


async def capture_and_watch(run: Run, count: int, label: str) -> CaptureTiming:
    """Capture ``count`` new leads and wait until every one was read back from the topic as LeadCaptured."""
    expected: set[str] = set()
    published: set[str] = set()
    reader = TopicReader(run.env.kafka, run.env.topic)
    await reader.start(from_end=True)

    def on_record(record) -> None:
        if dict(record.headers).get("ce_type") == b"LeadCaptured":
            published.add(record.key.decode())

    watching = asyncio.create_task(
        reader.read(on_record, lambda: len(expected) == count and expected <= published, timeout=max(120, count / 50))
    )
    try:
        started = time.perf_counter()
        await post_batches(run, count, label, expected.update)
        accepted = time.perf_counter()
        finished = await watching
    finally:
        watching.cancel()
        await reader.stop()
    return CaptureTiming(count, accepted - started, finished - started)


async def single_latency(run: Run, result: StageResult) -> None:
    """Open loop: request n is sent at start + n/rate whatever the earlier ones do (no coordinated omission)."""
    count, pace = run.sizes.single_posts, run.sizes.single_rate
    latencies: list[float] = []
    failures: list[str] = []
    progress = Progress(f"POST /leads at {pace}/s", count)

    async def one(client: httpx.AsyncClient, due: float, lead: dict) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            await capture_one(client, run.env, lead)
            latencies.append(time.perf_counter() - due)
        except Exception as exc:
            failures.append(str(exc))
        progress.update(len(latencies) + len(failures))

    async with run.client(connections=200) as client:
        start = time.perf_counter() + 0.2
        leads = run.leads.leads(count)
        await asyncio.gather(*(one(client, start + n / pace, lead) for n, lead in enumerate(leads)))
    elapsed = time.perf_counter() - start
    progress.finish()
    run.captured += len(latencies)
    if failures:
        result.alert(f"{len(failures)} of {count} POST /leads failed, e.g. {failures[0]}")
    ms = [x * 1000 for x in latencies]
    note = f"{count:,} requests, open loop at {pace}/s (achieved {rate(count, elapsed):,.0f}/s)"
    result.compare("POST /leads latency p50", percentile(ms, 50), "ms", "es.save1_p50_ms", run.baselines, note=note)
    result.compare("POST /leads latency p99", percentile(ms, 99), "ms", "es.save1_p99_ms", run.baselines, note=note)


async def run_stage(run: Run, result: StageResult) -> None:
    timing = await capture_and_watch(run, run.sizes.capture_leads, "batch capture")
    note = f"{timing.leads:,} leads in batches of {BATCH:,}"
    accepted = rate(timing.leads, timing.accepted_seconds)
    published = rate(timing.leads, timing.published_seconds)
    result.compare("batch capture accepted", accepted, "leads/s", "es.save1000_rate", run.baselines, note=note)
    result.compare("batch capture accepted → published", published, "leads/s", "es.save1000_rate", run.baselines, note=note)
    result.compare(
        "batch capture accepted → published (vs raw kafka)", published, "leads/s", "kafka.produce_consume_rate", run.baselines
    )
    result.compare("batch capture accepted → published (vs raw COPY)", published, "leads/s", "pg.copy_rate", run.baselines)
    if run.sizes.single_posts:
        # Measured on a settled system: the other services first work through the batch's leads.
        async with run.client() as client:
            waited = await settle(client, [run.env.url(service) for service in run.env.procs])
        say(f"  services settled after the batch in {waited:.0f}s")
        result.details["settle_seconds_before_single_posts"] = round(waited, 1)
        await single_latency(run, result)
    result.details["memory_after_capture"] = run.snapshot_memory("after capture")
