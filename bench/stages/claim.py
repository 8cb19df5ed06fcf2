"""Stage 3: many reps claim the same lead at the same moment; exactly one may win, every time.

Each trial captures a fresh lead (POST /leads), waits until assignment knows it
(GET /leads/{id}/ownership answers 200), then fires ``claimers`` claims at once, each with the
token of a different rep, over keep-alive connections opened once for the stage
(:mod:`bench.burst`: pre-built raw requests, so the figure measures the service, not the client).
The same team of reps races for the lead in every trial, as a sales team does for each new lead;
the first trial is the first time the service sees their tokens, and is also reported on its own.
Every claim must answer 200 (the winner) or 409 (owned by someone else); anything else, or a
winner count other than 1, is a failure.
The service's own latency histogram for the route, read before and after, gives the server-side figure.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from bench.burst import Burst, request_bytes
from bench.clients import UnexpectedResponse, capture_one
from bench.context import Run
from bench.progress import Progress
from bench.results import StageResult
from bench.server_metrics import difference, latency_buckets
from bench.stats import histogram_quantile, percentile

CLAIM_ROUTE = "/leads/{lead_id}/claim"


async def known_to_assignment(client: httpx.AsyncClient, run: Run, lead_id: str, timeout: float = 60) -> None:
    url = run.env.url("assignment") + f"/leads/{lead_id}/ownership"
    headers = run.env.headers("manager", "bench-manager")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get(url, headers=headers)
        if response.status_code == 200:
            return
        if response.status_code != 404:
            raise UnexpectedResponse(f"GET /leads/{lead_id}/ownership", response)
        await asyncio.sleep(0.05)
    raise TimeoutError(f"assignment did not learn of lead {lead_id} within {timeout:.0f}s")


async def trial(
    client: httpx.AsyncClient, burst: Burst, run: Run, transport_errors: Counter[str]
) -> tuple[list[float], Counter[int], float]:
    lead_id = await capture_one(client, run.env, run.leads.lead())
    run.captured += 1
    await known_to_assignment(client, run, lead_id)
    url = run.env.url("assignment") + f"/leads/{lead_id}/claim"
    requests = [request_bytes("POST", url, run.env.headers("rep", f"bench-rep-{n}")) for n in range(run.sizes.claimers)]
    cpu_before = run.env.cpu_seconds("assignment")
    answers = await burst.fire(requests)
    cpu = run.env.cpu_seconds("assignment") - cpu_before
    transport_errors.update(answer.error for answer in answers if answer.error)
    return [answer.seconds for answer in answers], Counter(answer.status for answer in answers), cpu


async def run_stage(run: Run, result: StageResult) -> None:
    trials, claimers = run.sizes.claim_trials, run.sizes.claimers
    latencies: list[list[float]] = []  # per trial
    winners: list[int] = []
    cpu_ms: list[float] = []
    statuses: Counter[int] = Counter()
    transport_errors: Counter[str] = Counter()
    progress = Progress(f"claim trials ({claimers} claimers each)", trials)
    async with run.client(timeout=60) as client, Burst(run.env.url("assignment"), claimers) as burst:
        server_before = await latency_buckets(client, run.env.url("assignment"), "POST", CLAIM_ROUTE)
        for number in range(trials):
            seconds, codes, cpu = await trial(client, burst, run, transport_errors)
            cpu_ms.append(cpu * 1000)
            latencies.append(seconds)
            winners.append(codes[200])
            statuses.update(codes)
            progress.update(number + 1, f"winners so far {winners}")
        server = difference(await latency_buckets(client, run.env.url("assignment"), "POST", CLAIM_ROUTE), server_before)
    progress.finish()
    result.details["winners_per_trial"] = winners
    result.details["statuses"] = {str(code): count for code, count in sorted(statuses.items())}
    result.details["transport_errors"] = dict(transport_errors)
    wrong = [(n, w) for n, w in enumerate(winners) if w != 1]
    if wrong:
        result.alert(f"CLAIM RACE BROKEN: trials with a winner count other than 1 (trial, winners): {wrong}")
    unexpected = {code: count for code, count in statuses.items() if code not in (200, 409)}
    if unexpected:
        result.alert(f"claims answered with unexpected statuses {unexpected} (0 = no response: {dict(transport_errors)})")
    ms = [x * 1000 for seconds in latencies for x in seconds]
    note = f"{trials} trials × {claimers} concurrent claimers"
    result.compare("claim latency p50 under contention", percentile(ms, 50), "ms", "es.save1_p50_ms", run.baselines, note=note)
    result.compare("claim latency p99 under contention", percentile(ms, 99), "ms", "es.save1_p99_ms", run.baselines, note=note)
    server_note = "the service's own histogram (from its middleware on), interpolated within buckets"
    server_ms = [histogram_quantile(server, pct) * 1000 for pct in (50, 99)]
    first, rest = [x * 1000 for x in latencies[0]], [x * 1000 for seconds in latencies[1:] for x in seconds]
    result.add("first trial (tokens never seen before) p99", percentile(first, 99), "ms", note="included above")
    if rest:
        result.add("claim latency p99, the trials after the first", percentile(rest, 99), "ms", note="tokens seen before")
    result.add("claim latency p50, server-side", server_ms[0], "ms", note=server_note)
    result.add("claim latency p99, server-side", server_ms[1], "ms", note=server_note)
    cpu_note = "assignment's CPU time (all threads) while a trial's claims were answered: the floor under its latency"
    result.add("assignment CPU per trial p50", percentile(cpu_ms, 50), "ms", note=cpu_note)
    result.details["slowest_ms_per_trial"] = [round(max(seconds) * 1000, 1) for seconds in latencies]
    result.details["cpu_ms_per_trial"] = [round(x, 1) for x in cpu_ms]
    within = dict(server).get(0.05, 0.0) / server[-1][1]
    result.add("claims answered within 50 ms, server-side", within * 100, "%", note="the histogram's 50 ms bucket")
    result.details["server_side_buckets"] = {str(bound): count for bound, count in server}
    result.add("winners per trial (min)", min(winners), "winners", note="must be 1")
    result.add("winners per trial (max)", max(winners), "winners", note="must be 1")
