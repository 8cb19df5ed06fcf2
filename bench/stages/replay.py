"""Stage 5: replaying a synthetic history into analytics' customer 360 + funnel, against raw consume.

The history (whole lead lives: captured, claimed, followed up, tasks, stage moves, won/lost) is
produced as valid contract envelopes to a topic of its own. The baseline is a plain consumer reading
the same topic (and one that also decodes and validates every envelope). The replay is analytics'
own CLI, ``python -m services.analytics.replay customer360 funnel --no-promote --no-follow``, run as
a child process on a schema of its own (so the running service's views are untouched); its peak
RSS is the largest VmHWM among it and its helper processes, sampled while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bench.context import Run
from bench.kafka_io import TopicReader, produce
from bench.launcher import ROOT
from bench.progress import Progress
from bench.results import StageResult
from bench.stats import rate
from bench.synthetic import history_envelopes
from shared.events import decode, encode, kafka_headers

PROJECTIONS = ("customer360", "funnel")
CAUGHT_UP = re.compile(r"caught up: ([\d,]+) events in ([\d.]+)s")
APPLIED = re.compile(r"applied ([\d,]+) events")


@dataclass(frozen=True)
class ReplayOutcome:
    events: int
    consume_rate: float  # raw consumer, bytes only
    decode_rate: float  # raw consumer + decode/validate of every envelope
    reported: int  # what the replay CLI said it had applied when it declared itself caught up
    applied: int  # the event ids its tables recorded as applied, counted after it exited
    replay_seconds: float  # the replay's own measure: consumer start → caught up
    wall_seconds: float  # the whole child process, start-up included
    peak_rss_mib: float


async def read_all(run: Run, topic: str, count: int, *, decoding: bool) -> float:
    reader = TopicReader(run.env.kafka, topic)
    await reader.start(from_end=False)
    seen = [0]

    def on_record(record) -> None:
        if decoding:
            decode(record.value)
        seen[0] += 1

    try:
        started = time.perf_counter()
        label = "raw consume + decode" if decoding else "raw consume"
        finished = await reader.read(
            on_record, lambda: seen[0] >= count, timeout=max(120, count / 500), progress=Progress(label, count)
        )
    finally:
        await reader.stop()
    return rate(count, finished - started)


def high_water_mib(pid: int) -> float:
    """The largest resident set of ``pid`` and its children so far (VmHWM; 0 once gone).

    Not ``wait4``'s ``ru_maxrss``: a child forked from this (large) bench process starts with the
    parent's peak, which survives ``exec``, so that figure measured the bench, not the replay."""
    pids = [pid]
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(child) for child in children.read_text().split()]
    peak = 0.0
    for each in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def run_replay_cli(run: Run, topic: str, count: int) -> tuple[int, float, float, float]:
    """(applied, replay seconds, wall seconds, peak RSS MiB) of the analytics replay CLI."""
    env = {
        **run.env.env,
        "LEADFLOW_TOPIC": topic,
        "LEADFLOW_ANALYTICS_SCHEMA": f"bench_replay_{count}",
        "LEADFLOW_CONSUMER_GROUP_PREFIX": f"{run.env.group_prefix}-replay-{count}",
    }
    command = [sys.executable, "-m", "services.analytics.replay", *PROJECTIONS, "--no-promote", "--no-follow"]
    progress = Progress(f"analytics replay {count:,}", count)
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    output: list[str] = []
    peak = 0.0
    try:
        assert proc.stderr is not None
        buffer = ""
        while chunk := proc.stderr.read1(4096).decode(errors="replace"):  # type: ignore[attr-defined]
            buffer += chunk
            *lines, buffer = re.split(r"[\r\n]", buffer)
            peak = max(peak, high_water_mib(proc.pid))
            for line in lines:
                output.append(line)
                if match := APPLIED.search(line):
                    progress.update(int(match.group(1).replace(",", "")))
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - started
    text = "\n".join([*output, buffer])
    if proc.returncode != 0:
        raise RuntimeError(f"analytics replay exited with {proc.returncode}:\n{text[-2000:]}")
    match = CAUGHT_UP.search(text)
    if match is None:
        raise RuntimeError(f"analytics replay did not report catching up:\n{text[-2000:]}")
    progress.finish()
    return int(match.group(1).replace(",", "")), float(match.group(2)), wall, peak


def events_in_replay_tables(run: Run, count: int) -> int:
    """Events the replay's instance recorded as applied (its ``processed_events``), read from the database."""
    with psycopg.connect(run.env.database_url) as conn:
        schemas = [
            row[0]
            for row in conn.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (f"bench_replay_{count}_r%",)
            )
        ]
        if len(schemas) != 1:
            raise RuntimeError(f"expected one replay instance schema for {count:,} events, found {schemas}")
        query = sql.SQL("SELECT count(*) FROM {}.processed_events").format(sql.Identifier(schemas[0]))
        return conn.execute(query).fetchone()[0]


async def replay_events(run: Run, count: int) -> ReplayOutcome:
    """Produce ``count`` events to a fresh topic and replay them (memoised: stages share the result)."""
    done: dict[int, ReplayOutcome] = run.shared.setdefault("replays", {})
    if count in done:
        return done[count]
    topic = await run.env.new_topic(f"{run.env.topic}.replay-{count}")
    records = ((e.subject.encode(), encode(e), kafka_headers(e)) for e in history_envelopes(count))
    await produce(run.env.kafka, topic, records, total=count, label=f"produce {count:,} synthetic events")
    consume_rate = await read_all(run, topic, count, decoding=False)
    decode_rate = await read_all(run, topic, count, decoding=True)
    reported, replay_seconds, wall, peak = await asyncio.to_thread(run_replay_cli, run, topic, count)
    applied = await asyncio.to_thread(events_in_replay_tables, run, count)
    done[count] = ReplayOutcome(count, consume_rate, decode_rate, reported, applied, replay_seconds, wall, peak)
    return done[count]


async def run_stage(run: Run, result: StageResult) -> None:
    for count in run.sizes.replay_events:
        outcome = await replay_events(run, count)
        if outcome.applied != count:
            result.alert(f"replay of {count:,} events left {outcome.applied:,} applied in its tables")
        if outcome.reported != count:
            result.details[f"replay{count}_reported_when_caught_up"] = outcome.reported
        key = f"replay{count}"
        run.baselines[f"{key}.consume_rate"] = result.add(f"raw consume {count:,}", outcome.consume_rate, "events/s").value
        run.baselines[f"{key}.decode_rate"] = result.add(
            f"raw consume + decode {count:,}", outcome.decode_rate, "events/s", note="shared.events.decode per record"
        ).value
        replay_rate = rate(count, outcome.replay_seconds)
        note = "±1 s: the CLI checks for catching up once a second"
        if outcome.reported != count:
            note += f"; it declared catching up with {outcome.reported:,} applied (batches still in flight)"
        result.compare(
            f"replay {count:,} → 360 + funnel", replay_rate, "events/s", f"{key}.consume_rate", run.baselines, note=note
        )
        result.compare(f"replay {count:,} (vs consume + decode)", replay_rate, "events/s", f"{key}.decode_rate", run.baselines)
        result.add(f"replay {count:,} wall clock (process start → exit)", outcome.wall_seconds, "s")
        result.add(
            f"replay {count:,} peak RSS",
            outcome.peak_rss_mib,
            "MiB",
            note="over the 200 MiB goal" if outcome.peak_rss_mib > 200 else "",
        )
    result.details["memory_after_replay"] = run.snapshot_memory("after replay")
