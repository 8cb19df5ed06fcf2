"""Rebuild projections from the whole history, then serve them without downtime.

    python -m services.analytics.replay funnel customer360      # build, promote, keep following live
    python -m services.analytics.replay pool_time --no-follow   # build, promote, exit (the service follows it)
    python -m services.analytics.replay funnel --instance analytics_r7   # resume a replay that was stopped
    python -m services.analytics.replay --list | --drop-retired

A replay builds the named projections from offset 0 into a fresh instance (a schema of their own),
printing events/s and an ETA; once caught up with the topic it switches the serving views to the
new tables in one transaction (readers see old or new, never neither) and follows the topic live.
The running service picks the new instance up within ``LEADFLOW_CATALOG_POLL_INTERVAL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import uvloop
from aiokafka import TopicPartition
from psycopg_pool import ConnectionPool

from services.analytics.catalog import Catalog, Instance, UnknownProjection
from services.analytics.config import AnalyticsSettings
from services.analytics.consumers import instance_consumer
from services.analytics.projections import REGISTRY
from services.analytics.tracking import InstanceWriter
from shared import logs
from shared.consumer import TopicConsumer
from shared.runtime import favour_throughput, freeze_start_up
from shared.topics import topic_partitions


async def position(consumer: TopicConsumer, writer: InstanceWriter) -> tuple[int, int] | None:
    """(records applied, records left) over every partition of the topic, from the instance's stored
    positions (what is committed, whoever applied it) against the end offsets; None before metadata."""
    partitions = consumer.consumer.partitions_for_topic(writer.topic)
    if not partitions:
        return None
    ends = await consumer.consumer.end_offsets([TopicPartition(writer.topic, p) for p in partitions])
    stored = await asyncio.to_thread(writer.load_positions, sorted(partitions))
    done = sum(offset or 0 for offset in stored.values())
    left = sum(max(0, end - (stored[tp.partition] or 0)) for tp, end in ends.items())
    return done, left


def progress_line(instance: str, applied: int, left: int | None, rate: float) -> str:
    eta = "?" if left is None or rate <= 0 else str(timedelta(seconds=round(left / rate)))
    left_text = "?" if left is None else f"{left:,}"
    return f"\r[{instance}] applied {applied:,} events · {rate:,.0f} events/s · {left_text} to go · ETA {eta}   "


def start_helpers(instance: Instance, shares: list[list[int]], batch: int) -> list[subprocess.Popen]:
    """One more process per share of the partitions, applying them to ``instance``: one Python process
    is bound to one core, so every core decodes and writes. Each reads its own partitions (no group
    rebalance to wait for when they join)."""
    command = [sys.executable, "-m", "services.analytics.replay", "--instance", instance.name, "--batch-size", str(batch)]
    command += ["--parent", str(os.getpid())]
    return [subprocess.Popen([*command, "--helper", ",".join(map(str, share))]) for share in shares]


def stop_helpers(helpers: list[subprocess.Popen]) -> None:
    """Each finishes the batch in hand and exits; whatever it had not stored is re-read by whoever
    holds its partitions next (positions live with the rows)."""
    for proc in helpers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in helpers:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def help_replay(
    settings: AnalyticsSettings, catalog: Catalog, instance: Instance, batch: int, partitions: list[int], parent: int
) -> None:
    """A helper process: apply ``partitions`` to ``instance`` until SIGTERM/SIGINT or until the replay
    that started it is gone (killed outright, it sends no signal), nothing else."""
    writer = InstanceWriter(catalog.pool, instance, settings.topic, catalog.schema)
    consumer = instance_consumer(settings, writer, batch, partitions)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, consumer.stop)

    async def stop_when_orphaned() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(0.5)
        consumer.stop()

    watch = asyncio.create_task(stop_when_orphaned())
    await consumer.start()
    try:
        await consumer.run()
    finally:
        watch.cancel()


async def replay(
    settings: AnalyticsSettings,
    catalog: Catalog,
    instance: Instance,
    *,
    promote: bool,
    follow: bool,
    batch: int,
    workers: int = 1,
) -> None:
    writer = InstanceWriter(catalog.pool, instance, settings.topic, catalog.schema)
    shares: list[list[int]] = []
    if workers > 1:
        partitions = await topic_partitions(settings.kafka_bootstrap, settings.topic)
        shares = [share for share in (partitions[k::workers] for k in range(workers)) if share]
    consumer = instance_consumer(settings, writer, batch, shares[0] if shares else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    helpers = start_helpers(instance, shares[1:], batch)
    await consumer.start()
    first_done = last_done = sum(offset or 0 for offset in (await asyncio.to_thread(writer.load_positions, [])).values())
    task = asyncio.create_task(consumer.run())
    started = last_at = time.monotonic()
    caught_up = False
    try:
        while not stop.is_set() and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            measured = await position(consumer, writer)
            if measured is None:
                continue
            done, left = measured
            now = time.monotonic()
            rate = (done - last_done) / (now - last_at)
            last_done, last_at = done, now
            applied = done - first_done
            print(progress_line(instance.name, applied, left, rate), end="", file=sys.stderr, flush=True)
            if left == 0 and not caught_up:
                caught_up = True
                elapsed = now - started
                speed = applied / max(elapsed, 1e-9)
                print(
                    f"\n[{instance.name}] caught up: {applied:,} events in {elapsed:.1f}s ({speed:,.0f} events/s)",
                    file=sys.stderr,
                )
                if promote:
                    await asyncio.to_thread(catalog.promote, instance)
                    print(f"[{instance.name}] now serving {', '.join(instance.projection_names)}", file=sys.stderr)
                if not follow:
                    break
                print(f"[{instance.name}] following the topic live; Ctrl-C to stop", file=sys.stderr)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        consumer.stop()
        await asyncio.to_thread(stop_helpers, helpers)
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description="Replay the topic into fresh projection tables, then serve them.")
    parser.add_argument("projections", nargs="*", help=f"any of: {', '.join(REGISTRY)}")
    parser.add_argument("--instance", help="resume building this instance instead of creating a new one")
    parser.add_argument("--no-promote", action="store_true", help="build only; do not switch the serving views")
    parser.add_argument("--no-follow", action="store_true", help="exit once caught up (and promoted)")
    parser.add_argument("--batch-size", type=int, default=5000, help="records per partition batch (default 5000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes applying the topic, sharing its partitions (default: one per core)",
    )
    parser.add_argument("--helper", metavar="PARTITIONS", help=argparse.SUPPRESS)  # a worker started by a replay
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)  # ... by this process (it may be gone already)
    parser.add_argument("--list", action="store_true", help="list the instances and what they serve")
    parser.add_argument("--drop-retired", action="store_true", help="drop the schemas of instances that serve nothing")
    args = parser.parse_args()
    settings = AnalyticsSettings()
    logs.configure_logging("analytics-replay", "WARNING")
    with ConnectionPool(settings.database_url, min_size=1, max_size=4) as pool:
        catalog = Catalog(pool, settings.analytics_schema)
        catalog.ensure_catalog()
        if args.list:
            for row in catalog.describe():
                print("\t".join(str(value) for value in row))
            return
        if args.drop_retired:
            print("dropped:", ", ".join(catalog.drop_retired()) or "nothing")
            return
        if not args.projections and not args.instance:
            parser.error("name the projections to replay (or --instance to resume one)")
        try:
            instance = catalog.instance(args.instance) if args.instance else catalog.create_instance(args.projections)
        except UnknownProjection as exc:
            parser.error(str(exc))
        if instance is None:
            parser.error(f"no instance {args.instance}")
        freeze_start_up()
        favour_throughput()
        if args.helper:
            partitions = [int(p) for p in args.helper.split(",")]
            uvloop.run(help_replay(settings, catalog, instance, args.batch_size, partitions, args.parent))
            return
        print(f"[{instance.name}] replaying {', '.join(instance.projection_names)} from {settings.topic}", file=sys.stderr)
        uvloop.run(
            replay(
                settings,
                catalog,
                instance,
                promote=not args.no_promote,
                follow=not args.no_follow,
                batch=args.batch_size,
                workers=max(1, args.workers),
            )
        )


if __name__ == "__main__":
    main()
