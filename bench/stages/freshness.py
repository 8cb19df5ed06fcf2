"""Stage 4: how long after intake acknowledged (recorded) a lead the analytics API shows it.

Load is offered open-loop: every 100 ms a batch of rate/10 new leads goes to POST /leads/batch,
whatever the earlier batches do (at most ``MAX_IN_FLIGHT`` outstanding; beyond that the achieved
rate falls short and the table says so). A few leads per second are probes: from the moment their
batch was answered, GET /customers/{id} is polled every ``POLL`` seconds until it answers 200.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.clients import UnexpectedResponse, capture_batch, created_ids
from bench.context import Run
from bench.kafka_io import records_in
from bench.progress import Progress
from bench.results import StageResult
from bench.stats import percentile, rate

TICK = 0.1
POLL = 0.05
MAX_IN_FLIGHT = 8
GIVE_UP = 120.0


async def visible_after(client: httpx.AsyncClient, run: Run, lead_id: str, recorded: float) -> float:
    url = run.env.url("analytics") + f"/customers/{lead_id}"
    headers = run.env.headers("manager", "bench-manager")
    while time.perf_counter() - recorded < GIVE_UP:
        response = await client.get(url, headers=headers)
        if response.status_code == 200:
            return time.perf_counter() - recorded
        if response.status_code != 404:
            raise UnexpectedResponse(f"GET /customers/{lead_id}", response)
        await asyncio.sleep(POLL)
    raise TimeoutError(f"lead {lead_id} not visible in analytics after {GIVE_UP:.0f}s")


async def at_rate(run: Run, result: StageResult, per_second: int) -> None:
    seconds = run.sizes.freshness_seconds
    ticks = int(seconds / TICK)
    per_tick = max(1, round(per_second * TICK))
    probe_every = max(1, round(1 / (run.sizes.freshness_probes_per_second * TICK)))
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    latencies: list[float] = []
    probes: list[asyncio.Task[float]] = []
    sent = [0]
    progress = Progress(f"freshness at {per_second}/s", ticks * per_tick)

    async def send(client: httpx.AsyncClient, due: float, probe: bool) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        async with gate:
            ids = created_ids(await capture_batch(client, run.env, run.leads.leads(per_tick)))
        recorded = time.perf_counter()
        sent[0] += per_tick
        run.captured += per_tick
        progress.update(sent[0], f"{len(latencies)} probes seen")
        if probe:
            probes.append(asyncio.create_task(visible_after(client, run, ids[0], recorded)))

    records_before = await records_in(run.env.kafka, run.env.topic)
    async with run.client(connections=MAX_IN_FLIGHT + 40) as client:
        start = time.perf_counter() + 0.2
        await asyncio.gather(*(send(client, start + n * TICK, n % probe_every == 0) for n in range(ticks)))
        offered = time.perf_counter() - start
        # Every service's events (captured, scored, claimed, tasks, ...) during the load, not just captures.
        events_rate = rate(await records_in(run.env.kafka, run.env.topic) - records_before, offered)
        latencies.extend(await asyncio.gather(*probes))
    progress.finish()
    ms = [x * 1000 for x in latencies]
    achieved = rate(sent[0], offered)
    note = f"{len(ms)} probes over {seconds:g}s; achieved {achieved:,.0f} leads/s = {events_rate:,.0f} events/s on the topic"
    if achieved < per_second * 0.9:
        note += " (below target: intake could not keep up)"
    result.compare(f"freshness p50 at {per_second}/s", percentile(ms, 50), "ms", "kafka.latency_p50_ms", run.baselines, note=note)
    result.compare(f"freshness p99 at {per_second}/s", percentile(ms, 99), "ms", "kafka.latency_p99_ms", run.baselines, note=note)
    result.details[f"achieved_rate_{per_second}"] = achieved
    result.details[f"topic_events_per_second_{per_second}"] = events_rate


async def run_stage(run: Run, result: StageResult) -> None:
    for per_second in run.sizes.freshness_rates:
        await at_rate(run, result, per_second)
