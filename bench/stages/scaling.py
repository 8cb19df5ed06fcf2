"""Stage 7: does the per-event cost stay flat as the history grows?

- capture: at each size N, intake's store is filled to N − window leads, then ``window`` more are
  captured and watched onto the topic; the per-lead cost is measured on that window only;
- projection: analytics' replay of N events (shared with the replay stage when sizes coincide);
- scheduler tick: assignment's recycler with N owned leads of which ``tick_due`` are past their
  first-contact deadline, run in-process on a schema of its own with a fake clock.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import Tracking
from psycopg_pool import ConnectionPool

from bench.context import Run
from bench.progress import Progress
from bench.results import StageResult
from bench.stages.capture import capture_and_watch, post_batches
from bench.stages.replay import replay_events
from bench.stats import flatness, per_event_us
from bench.synthetic import LeadFactory, captured_payload
from services.assignment.app import AssignmentApplication
from services.assignment.config import AssignmentSettings, load_assignment_rules
from services.assignment.policies import UpstreamPolicy
from services.assignment.projections import Projector
from services.assignment.readmodel import ReadModel
from services.assignment.recycling import Recycler
from shared.clock import FakeClock
from shared.consumer import Delivered
from shared.events import make_envelope
from shared.eventstore import apply_tracked_batch, ensure_schema, eventsourcing_env

LEADS_PER_REP = 150  # under the default claim limit of 200


def _growth(result: StageResult, what: str, costs: list[float], sizes: list[int]) -> None:
    if len(costs) > 1:
        result.add(f"{what} cost growth {sizes[0]:,} → {sizes[-1]:,}", flatness(costs), "×", note="1.0 = flat")


async def capture_stage(run: Run, result: StageResult) -> None:
    window = run.sizes.scaling_window
    costs, sizes = [], []
    for size in sorted(run.sizes.scaling_leads):
        fill = size - window - run.captured
        if fill > 0:
            await post_batches(run, fill, f"fill intake to {size - window:,} leads")
        at = run.captured + window
        timing = await capture_and_watch(run, window, f"capture window at {at:,}")
        cost = per_event_us(window, timing.published_seconds)
        base = 1e6 / run.baselines["es.save1000_rate"] if "es.save1000_rate" in run.baselines else None
        if base is not None:
            run.baselines["es.save1000_us"] = base
        note = f"{window:,} leads captured → published with {at - window:,} already stored"
        result.compare(f"capture cost at {at:,} leads", cost, "µs/lead", "es.save1000_us", run.baselines, note=note)
        costs.append(cost)
        sizes.append(at)
    _growth(result, "capture", costs, sizes)


async def projection_stage(run: Run, result: StageResult) -> None:
    costs, sizes = [], []
    for size in sorted(run.sizes.scaling_leads):
        outcome = await replay_events(run, size)
        run.baselines[f"replay{size}.decode_us"] = per_event_us(size, size / outcome.decode_rate)
        cost = per_event_us(size, outcome.replay_seconds)
        result.compare(f"projection cost at {size:,} events", cost, "µs/event", f"replay{size}.decode_us", run.baselines)
        costs.append(cost)
        sizes.append(size)
    _growth(result, "projection", costs, sizes)


TICK_TRIALS = 3  # each a tick releasing a group of its own: one tick is one sample, at the mercy of a checkpoint
GROUP_GAP = timedelta(hours=1)  # between the claim times, so between the deadlines, of two due groups


def seed_owned_leads(
    app: AssignmentApplication, policy: UpstreamPolicy, clock: FakeClock, count: int, due: int, topic: str, groups: int = 1
) -> None:
    """``count`` leads reported by reps (so owned from capture); ``groups`` groups of ``due`` leads, the first
    claimed 10 days earlier and each next one ``GROUP_GAP`` later, are past their first-contact deadline
    (group by group as the clock moves on); the rest are claimed now."""
    factory = LeadFactory(seed=count)
    progress = Progress(f"seed assignment with {count:,} owned leads", count)
    start = clock.now
    first_due = start - timedelta(days=10)
    bounds = sorted({0, *range(due, due * groups + 1, due), *range(due * groups + 1000, count, 1000), count})
    for low, high in itertools.pairwise(bounds):
        group = low // due
        clock.now = first_due + group * GROUP_GAP if group < groups else start
        batch = []
        for n in range(low, high):
            payload = captured_payload(factory.lead(), str(uuid.uuid4())).model_copy(
                update={"reported_by": f"bench-rep-{n // LEADS_PER_REP}"}
            )
            batch.append(Delivered(0, n, make_envelope(payload, service="intake", time=clock.now), payload))
        apply_tracked_batch(app, [Tracking(f"{topic}:0", high)], batch, policy)
        progress.update(high)
    clock.now = start
    progress.finish()


def measure_tick(run: Run, count: int) -> tuple[list[float], float, list[int]]:
    """(seconds of each trial's tick, each with one group of ``tick_due`` due; seconds of a tick with none
    due; how many each trial's tick released)."""
    schema = f"bench_tick_{count}"
    settings = AssignmentSettings(database_url=run.env.database_url)
    rules = settings.ownership_rules()
    ensure_schema(settings, schema)
    app = AssignmentApplication(eventsourcing_env(settings, schema), rules)
    clock = FakeClock(datetime(2026, 11, 1, tzinfo=UTC))
    policy = UpstreamPolicy(rules, load_assignment_rules(settings.assignment_rules), clock)
    seeded_at = clock.now
    due_ticks, released = [], []
    try:
        with ConnectionPool(run.env.database_url, min_size=1, max_size=2) as pool:
            readmodel = ReadModel(pool, schema)
            readmodel.create_tables()
            seed_owned_leads(app, policy, clock, count, run.sizes.tick_due, run.env.topic + ".tick", TICK_TRIALS)
            Projector(app, readmodel).catch_up()
            recycler = Recycler(app, readmodel, clock)
            for group in range(TICK_TRIALS):
                # Past this group's first-contact deadline, before the next group's (and long before everyone else's).
                clock.now = seeded_at - timedelta(days=10) + group * GROUP_GAP + rules.first_contact_sla + GROUP_GAP / 2
                started = time.perf_counter()
                released.append(len(recycler.tick()))
                due_ticks.append(time.perf_counter() - started)
                Projector(app, readmodel).catch_up()
            started = time.perf_counter()
            recycler.tick()
            idle_tick = time.perf_counter() - started
    finally:
        app.close()
    return due_ticks, idle_tick, released


async def tick_stage(run: Run, result: StageResult) -> None:
    due = run.sizes.tick_due
    costs, sizes = [], []
    for count in sorted(run.sizes.tick_leads):
        due_ticks, idle_tick, released = await asyncio.to_thread(measure_tick, run, count)
        if any(n != due for n in released):
            result.alert(f"ticks with {count:,} leads released {released} leads, expected {due} each")
        due_tick = statistics.median(due_ticks)
        result.compare(
            f"scheduler tick, {count:,} owned leads, {due} due",
            due_tick * 1000,
            "ms",
            "es.save1_p50_ms",
            run.baselines,
            note=f"median of {len(due_ticks)} ticks ({', '.join(f'{t * 1000:.0f}' for t in due_ticks)} ms), released {released}",
        )
        result.add(f"scheduler tick, {count:,} owned leads, none due", idle_tick * 1000, "ms")
        costs.append(due_tick)
        sizes.append(count)
    _growth(result, "scheduler tick", costs, sizes)
