"""Stage 1: what the raw tools do on this machine right now, for every later figure to be divided by."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import psycopg
from eventsourcing.domain import Aggregate, event
from psycopg import sql

from bench.context import Run
from bench.kafka_io import TopicReader, produce
from bench.progress import Progress
from bench.results import StageResult
from bench.stats import percentile, rate
from bench.synthetic import LeadFactory, captured_payload
from shared.config import ServiceSettings
from shared.events import encode, kafka_headers, make_envelope
from shared.eventstore import EventSourcedApplication, ensure_schema, eventsourcing_env
from shared.relay import build_producer

NEEDS = LeadFactory().lead()["needs"] * 2  # ~1 KB of state per recorded event, like a captured lead


def one_kb_records(count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """Encoded LeadCaptured envelopes (~1.1 KB each), keyed by lead id like the services' records."""
    factory = LeadFactory(seed=1)
    records = []
    for _ in range(count):
        envelope = make_envelope(captured_payload(factory.lead(), str(uuid.uuid4())), service="bench", time=datetime.now(UTC))
        records.append((envelope.subject.encode(), encode(envelope), kafka_headers(envelope)))
    return records


async def kafka_throughput(run: Run, result: StageResult) -> None:
    size = run.sizes.kafka_events
    topic = await run.env.new_topic(run.env.topic + ".baseline")
    records = one_kb_records(size)
    reader = TopicReader(run.env.kafka, topic)
    await reader.start(from_end=False)
    received = [0]

    def count(_record) -> None:
        received[0] += 1

    try:
        consuming = asyncio.create_task(
            reader.read(count, lambda: received[0] >= size, timeout=300, progress=Progress("kafka consume", size))
        )
        started = time.perf_counter()
        produce_seconds = await produce(run.env.kafka, topic, records, total=size, label="kafka produce")
        finished = await consuming
    finally:
        await reader.stop()
    run.baselines["kafka.produce_rate"] = result.add("kafka produce (acked)", rate(size, produce_seconds), "events/s").value
    run.baselines["kafka.produce_consume_rate"] = result.add(
        "kafka produce → consume", rate(size, finished - started), "events/s", note=f"{size:,} × ~1.1 KB, 6 partitions"
    ).value


async def kafka_latency(run: Run, result: StageResult) -> None:
    """One record at a time at a fixed rate, with the services' producer settings (linger 5 ms)."""
    size, pace = run.sizes.kafka_latency_events, run.sizes.kafka_latency_rate
    topic = await run.env.new_topic(run.env.topic + ".latency")
    records = one_kb_records(size)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    reader = TopicReader(run.env.kafka, topic)
    await reader.start(from_end=False)

    def arrived(record) -> None:
        latencies.append(time.perf_counter() - sent_at[int(dict(record.headers)["bench_seq"])])

    producer = build_producer(run.env.kafka)
    await producer.start()
    try:
        consuming = asyncio.create_task(reader.read(arrived, lambda: len(latencies) >= size, timeout=120))
        started = time.perf_counter()
        for seq, (key, value, headers) in enumerate(records):
            await asyncio.sleep(max(0.0, started + seq / pace - time.perf_counter()))
            sent_at[seq] = time.perf_counter()
            await producer.send(topic, value=value, key=key, headers=[*headers, ("bench_seq", str(seq).encode())])
        await consuming
    finally:
        await producer.stop()
        await reader.stop()
    ms = [x * 1000 for x in latencies]
    note = f"{size:,} at {pace}/s"
    run.baselines["kafka.latency_p50_ms"] = result.add(
        "kafka produce → consume latency p50", percentile(ms, 50), "ms", note=note
    ).value
    run.baselines["kafka.latency_p99_ms"] = result.add(
        "kafka produce → consume latency p99", percentile(ms, 99), "ms", note=note
    ).value


def postgres_inserts(run: Run, result: StageResult) -> None:
    """Rows shaped like eventsourcing's stored events, in one transaction: executemany, then COPY."""
    size = run.sizes.pg_rows
    schema = "bench_raw"
    state = NEEDS.encode()
    rows = [(uuid.uuid4(), 1, "bench:Probe.Created", state) for _ in range(size)]
    with psycopg.connect(run.env.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table in ("rows_executemany", "rows_copy"):
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {}.{} (id bigserial PRIMARY KEY, originator_id uuid NOT NULL, "
                    "originator_version int NOT NULL, topic text NOT NULL, state bytea NOT NULL, "
                    "UNIQUE (originator_id, originator_version))"
                ).format(sql.Identifier(schema), sql.Identifier(table))
            )
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {}.rows_executemany (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)"
                ).format(sql.Identifier(schema)),
                rows,
            )
        executemany = time.perf_counter() - started
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(
                sql.SQL("COPY {}.rows_copy (originator_id, originator_version, topic, state) FROM STDIN").format(
                    sql.Identifier(schema)
                )
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        copied = time.perf_counter() - started
    note = f"{size:,} rows × ~1 KB, one transaction"
    run.baselines["pg.executemany_rate"] = result.add("postgres executemany", rate(size, executemany), "rows/s", note=note).value
    run.baselines["pg.copy_rate"] = result.add("postgres COPY", rate(size, copied), "rows/s", note=note).value


class Probe(Aggregate):
    """A throwaway aggregate whose creation event carries ~1 KB, like a captured lead."""

    @event("Created")
    def __init__(self, needs: str) -> None:
        self.needs = needs


class ProbeStore(EventSourcedApplication):
    name = "bench_probe"


def eventsourcing_saves(run: Run, result: StageResult) -> None:
    settings = ServiceSettings(database_url=run.env.database_url)
    ensure_schema(settings, "bench_probe")
    app = ProbeStore(env=eventsourcing_env(settings, "bench_probe"))
    try:
        singles = run.sizes.es_single_saves
        progress = Progress("eventsourcing 1 event/save", singles)
        durations = []
        started = time.perf_counter()
        for n in range(singles):
            t = time.perf_counter()
            app.save(Probe(NEEDS))
            durations.append(time.perf_counter() - t)
            progress.update(n + 1)
        single_seconds = time.perf_counter() - started
        progress.finish()
        batches = run.sizes.es_batch_saves
        progress = Progress("eventsourcing 1,000 events/save", batches * 1000)
        batch_seconds = 0.0
        for n in range(batches):
            aggregates = [Probe(NEEDS) for _ in range(1000)]
            t = time.perf_counter()
            app.save(*aggregates)
            batch_seconds += time.perf_counter() - t
            progress.update((n + 1) * 1000)
        progress.finish()
    finally:
        app.close()
    ms = [d * 1000 for d in durations]
    run.baselines["es.save1_rate"] = result.add(
        "eventsourcing save, 1 event/save", rate(singles, single_seconds), "events/s"
    ).value
    run.baselines["es.save1_p50_ms"] = result.add("eventsourcing save latency p50", percentile(ms, 50), "ms").value
    run.baselines["es.save1_p99_ms"] = result.add("eventsourcing save latency p99", percentile(ms, 99), "ms").value
    run.baselines["es.save1000_rate"] = result.add(
        "eventsourcing save, 1,000 events/save",
        rate(batches * 1000, batch_seconds),
        "events/s",
        note="aggregate creation excluded",
    ).value


async def run_stage(run: Run, result: StageResult) -> None:
    await kafka_throughput(run, result)
    await kafka_latency(run, result)
    await asyncio.to_thread(postgres_inserts, run, result)
    await asyncio.to_thread(eventsourcing_saves, run, result)
