"""Stage: notify's webhook deliveries per second to a local receiver, and event → notification latency at a rate.

1. Throughput: a subscription to a receiver in this process is paused, ``notify_deliveries`` events are written
   straight onto the topic (as the services publish them) and queued; then it is resumed and the receiver counts
   how fast they arrive (signed, one at a time per lead, recorded in batches). A second figure has the same number
   arrive while notify is also consuming them (the whole path, topic to receiver).
2. Latency: events are offered open-loop at ``notify_rate``/s for ``notify_seconds`` (nine in ten LeadCaptured, one
   in ten a LeadClaimed assigning the lead to a rep): from each event's ``time`` to the receiver having it, and,
   for the assignments, to the rep's console-feed item being written (read from notify's tables).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import psycopg
from aiohttp import web

from bench.context import Run
from bench.kafka_io import produce
from bench.launcher import free_port
from bench.progress import Progress
from bench.results import StageResult
from bench.stats import percentile, rate
from shared.events import LeadCaptured, LeadClaimed, encode, kafka_headers, make_envelope
from shared.relay import build_producer

REP = "bench-notify-rep"
GIVE_UP = 180.0


class Receiver:
    """A local webhook receiver that answers 204 and notes when each event arrived (wall clock, like ``time``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        event_id = request.headers["webhook-id"]
        if event_id not in self.arrivals:
            self.arrivals[event_id] = time.perf_counter()
            self.latency[event_id] = now - datetime.fromisoformat(orjson.loads(body)["time"]).timestamp()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def _captured(at: datetime) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    lead = str(uuid.uuid4())
    payload = LeadCaptured(
        lead_id=lead, name="压测客户", phone="+8613800138000", source="bench", score=60, grade="B", captured_by="bench"
    )
    envelope = make_envelope(payload, service="intake", time=at, just_built=True)
    return lead.encode(), encode(envelope), kafka_headers(envelope)


def _assigned(at: datetime) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    lead = str(uuid.uuid4())
    payload = LeadClaimed(lead_id=lead, rep_id=REP, how="assign", protected_until=at + timedelta(days=30), assigned_by="bench")
    envelope = make_envelope(payload, service="assignment", time=at, just_built=True)
    return lead.encode(), encode(envelope), kafka_headers(envelope)


async def _until(check, timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise TimeoutError(f"notify did not get there within {timeout:.0f}s")


async def throughput(run: Run, result: StageResult, client: httpx.AsyncClient, admin: dict[str, str], *, paused: bool) -> None:
    count = run.sizes.notify_deliveries
    notify = run.env.url("notify")
    receiver = Receiver()
    await receiver.start()
    created = await client.post(f"{notify}/webhooks", json={"url": receiver.url, "types": ["LeadCaptured"]}, headers=admin)
    created.raise_for_status()
    sid = created.json()["id"]

    async def queued() -> bool:
        return (await client.get(f"{notify}/webhooks/{sid}", headers=admin)).json()["waiting"] >= count

    progress = Progress("notify: deliveries", count)

    async def delivered() -> bool:
        progress.update(len(receiver.arrivals))
        return len(receiver.arrivals) >= count

    try:
        if paused:
            (await client.post(f"{notify}/webhooks/{sid}/pause", headers=admin)).raise_for_status()
        now = datetime.now(UTC)
        label = "notify: queue deliveries" if paused else "notify: deliver as consumed"
        started = time.perf_counter()
        await produce(run.env.kafka, run.env.topic, (_captured(now) for _ in range(count)), total=count, label=label)
        if paused:
            await _until(queued, GIVE_UP)
            started = time.perf_counter()
            (await client.post(f"{notify}/webhooks/{sid}/resume", headers=admin)).raise_for_status()
        await _until(delivered, GIVE_UP, 0.05)
        progress.finish()
    finally:
        await client.delete(f"{notify}/webhooks/{sid}", headers=admin)
        await receiver.stop()
    seconds = max(receiver.arrivals.values()) - started
    if paused:
        result.compare(
            "webhook deliveries (queued → receiver)",
            rate(count, seconds),
            "deliveries/s",
            "kafka.produce_consume_rate",
            run.baselines,
            note=f"{count:,} signed deliveries, one lead each, one receiver on this machine",
        )
    else:
        result.add(
            "webhook deliveries (topic → receiver)",
            rate(count, seconds),
            "deliveries/s",
            note="from the first produce: notify consuming, queueing and delivering at once",
        )


async def latency(run: Run, result: StageResult, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    per_second, seconds = run.sizes.notify_rate, run.sizes.notify_seconds
    notify = run.env.url("notify")
    receiver = Receiver()
    await receiver.start()
    created = await client.post(f"{notify}/webhooks", json={"url": receiver.url}, headers=admin)
    created.raise_for_status()
    sid = created.json()["id"]
    producer = build_producer(run.env.kafka)
    await producer.start()
    total = int(per_second * seconds)
    tick = 0.05
    per_tick = max(1, round(per_second * tick))
    sent = 0
    try:
        progress = Progress(f"notify at {per_second}/s", total)
        start = time.perf_counter()
        while sent < total:
            due = start + (sent // per_tick) * tick
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now = datetime.now(UTC)
            for _ in range(min(per_tick, total - sent)):
                key, value, headers = _assigned(now) if sent % 10 == 9 else _captured(now)
                await producer.send(run.env.topic, value=value, key=key, headers=headers)
                sent += 1
            progress.update(sent)
        await producer.flush()
        offered = time.perf_counter() - start

        async def all_in() -> bool:
            return len(receiver.arrivals) >= total

        await _until(all_in, GIVE_UP)
        progress.finish()
    finally:
        await producer.stop()
        await client.delete(f"{notify}/webhooks/{sid}", headers=admin)
        await receiver.stop()
    ms = [x * 1000 for x in receiver.latency.values()]
    note = f"{total:,} events offered at {rate(total, offered):,.0f}/s over {offered:.0f}s; event time → receiver"
    result.compare(
        f"event → webhook p50 at {per_second}/s", percentile(ms, 50), "ms", "kafka.latency_p50_ms", run.baselines, note=note
    )
    figure = result.compare(
        f"event → webhook p99 at {per_second}/s", percentile(ms, 99), "ms", "kafka.latency_p99_ms", run.baselines, note=note
    )
    if figure.value >= 1000:
        result.details["over_target"] = "event → webhook p99 is 1 s or more"
    assignments = total // 10
    feed: list[float] = []
    deadline = time.monotonic() + 60
    while len(feed) < assignments and time.monotonic() < deadline:  # the messenger may lag the webhooks a little
        feed = await asyncio.to_thread(_feed_latencies, run)
        await asyncio.sleep(0.2)
    if len(feed) < assignments:
        result.alert(f"only {len(feed)} of {assignments} assignment notices reached the feed within a minute")
    if feed:
        result.add(
            f"event → console feed p99 at {per_second}/s",
            percentile(feed, 99),
            "ms",
            note=f"{len(feed):,} lead_assigned notices to one rep; event time → feed item written",
        )


def _feed_latencies(run: Run) -> list[float]:
    with psycopg.connect(run.env.database_url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM f.created_at - n.event_time) * 1000 FROM notify.feed f"
            " JOIN notify.notices n ON n.id = f.notice_id WHERE f.recipient = %s",
            (REP,),
        ).fetchall()
    return [float(row[0]) for row in rows]


async def run_stage(run: Run, result: StageResult) -> None:
    admin = run.env.headers("admin", "bench-admin")
    async with run.client(connections=8) as client:
        # Latency first: the throughput runs leave the other services a backlog of tens of thousands of captures
        # to digest, which would compete with the paced load for the same two cores.
        await latency(run, result, client, admin)
        await throughput(run, result, client, admin, paused=True)
        await throughput(run, result, client, admin, paused=False)
