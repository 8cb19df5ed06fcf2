"""``python -m bench [--quick] [--sizes 10000,100000] [--stages capture,claim] [--<size-name> N]``.

Starts the services that exist in ``services/`` on a fresh database and topic, runs every stage,
prints one table, writes ``.bench/bench-<time>.json`` (and ``.bench/latest.json``) and stops and
drops everything it started. Exit status 1 when a stage crashed or a correctness check failed
(e.g. two winners of one claim); a stage whose service does not exist yet is reported, not failed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from bench.context import Run
from bench.launcher import ALL_SERVICES, ROOT, Environment, service_exists
from bench.machine import machine_facts
from bench.progress import say
from bench.report import table, write_json
from bench.results import StageResult
from bench.sizes import QUICK, Sizes
from bench.stages import Stage, all_stages
from shared.config import DEFAULT_DATABASE_URL


def _int_list(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="LeadFlow benchmarks against same-run baselines.")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes (CI)")
    parser.add_argument("--sizes", type=_int_list, help="lead counts for the scaling stages, e.g. 10000,100000,1000000")
    parser.add_argument("--stages", type=lambda s: [x for x in s.split(",") if x], help="run only these stages")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench", help="folder for the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the run's database and topics for inspection")
    parser.add_argument(
        "--services",
        type=lambda s: [x for x in s.split(",") if x],
        help="start only these services (default: all of them, as in production); e.g. --services intake "
        "measures intake without the other services consuming its topic on the same cores",
    )
    group = parser.add_argument_group("sizes", "override one size (defaults: the issue's sizes, or --quick's)")
    for field in dataclasses.fields(Sizes):
        kind = _int_list if "list" in str(field.type) else float if field.type == "float" else int
        group.add_argument(f"--{field.name.replace('_', '-')}", dest=f"size_{field.name}", type=kind, metavar="N")
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = dataclasses.replace(QUICK if args.quick else Sizes())
    if args.sizes:
        sizes.scaling_leads = args.sizes
        sizes.tick_leads = args.sizes
    for field in dataclasses.fields(Sizes):
        value = getattr(args, f"size_{field.name}")
        if value is not None:
            setattr(sizes, field.name, value)
    return sizes


async def run_stage(run: Run, stage: Stage, failed_services: dict[str, str], services: tuple[str, ...]) -> StageResult:
    result = StageResult(stage.name)
    missing = [s for s in stage.needs if not service_exists(s)]
    if missing:
        result.status, result.reason = "unavailable", f"not available (service missing: {', '.join(missing)})"
        say(f"== {stage.name}: {result.reason}")
        return result
    left_out = [s for s in stage.needs if s not in services]
    if left_out:
        result.status, result.reason = "unavailable", f"not run (not started: {', '.join(left_out)}; see --services)"
        say(f"== {stage.name}: {result.reason}")
        return result
    broken = [f"{s}: {failed_services[s]}" for s in stage.needs if s in failed_services]
    if broken:
        result.status, result.reason = "failed", "service did not start: " + "; ".join(broken)
        say(f"== {stage.name}: FAILED ({result.reason.splitlines()[0]})")
        return result
    say(f"== {stage.name}")
    started = time.perf_counter()
    try:
        await stage.run(run, result)
    except Exception as exc:
        result.status, result.reason = "failed", f"{type(exc).__name__}: {exc}"
        result.details["traceback"] = traceback.format_exc()
        say(f"!! {stage.name} FAILED: {result.reason}\n{result.details['traceback']}")
    result.seconds = round(time.perf_counter() - started, 1)
    return result


async def run_all(run: Run, stages: list[Stage], services: tuple[str, ...] = ALL_SERVICES) -> list[StageResult]:
    await run.env.open()
    failed_services: dict[str, str] = {}
    # By default the whole pipeline runs whenever a stage needs a service: the consumers of every
    # service compete for the same two cores in production, and the memory stage measures them all.
    wanted = any(stage.needs or stage.name == "memory" for stage in stages)
    for service in services:
        if wanted and service_exists(service):
            say(f"starting {service} on port {run.env.ports[service]}")
            try:
                await asyncio.to_thread(run.env.start, service)
            except Exception as exc:
                failed_services[service] = str(exc)
                say(f"!! {service} did not start: {exc}")
    if run.env.procs:
        await asyncio.sleep(2)  # let consumers settle into their groups before calling it idle
        run.snapshot_memory("idle")
    return [await run_stage(run, stage, failed_services, services) for stage in stages]


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = sizes_from(args)
    stages = [s for s in all_stages() if not args.stages or s.name in args.stages]
    unknown = set(args.stages or ()) - {s.name for s in all_stages()}
    if unknown:
        sys.exit(f"unknown stages: {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in all_stages())}")
    services = tuple(s for s in ALL_SERVICES if not args.services or s in args.services)
    unknown = set(args.services or ()) - set(ALL_SERVICES)
    if unknown:
        sys.exit(f"unknown services: {', '.join(sorted(unknown))}; known: {', '.join(ALL_SERVICES)}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    env = Environment(
        kafka=os.environ.get("LEADFLOW_KAFKA_BOOTSTRAP", "localhost:9092"),
        database_url=os.environ.get("LEADFLOW_DATABASE_URL", DEFAULT_DATABASE_URL),
        logs=args.out / f"logs-{stamp}",
        keep=args.keep,
    )
    signal.signal(signal.SIGTERM, _terminate)
    run = Run(env=env, sizes=sizes)
    started = datetime.now(UTC)
    try:
        machine = machine_facts(env.base_database_url)
        results = uvloop.run(run_all(run, stages, services))
    finally:
        say("stopping services and dropping the run's database and topics" if not args.keep else "stopping services")
        env.close()
    document = {
        "started": started,
        "finished": datetime.now(UTC),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "sizes": dataclasses.asdict(sizes),
        "machine": machine,
        "services": list(services),
        "environment": {"database": env.database, "topic": env.topic, "logs": str(env.logs), "kept": args.keep},
        "baselines": run.baselines,
        "memory_mib": run.memory,
        "stages": [r.as_json() for r in results],
    }
    path = write_json(args.out, stamp, document)
    print(table(results))
    facts = f"{machine['cores']} cores, {machine['cpu_model']}, {machine['memory_gib']} GiB"
    print(f"\nmachine: {facts}, load at start {machine['load_average_at_start']}, commit {machine['git_commit'][:10]}")
    print(f"services running: {', '.join(services)}")
    print(f"results: {path}")
    failed = [r.stage for r in results if r.status == "failed" or r.alerts]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)
