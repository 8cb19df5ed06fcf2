"""Stage 6: resident memory of each service idle, after capture, after replay and its peak; goal < 200 MiB.

The same-run baseline is the floor: a bare Python process that imported the libraries every
service imports (FastAPI, aiokafka, eventsourcing, psycopg, pydantic). A service far above it holds data.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from bench.context import Run
from bench.results import StageResult

GOAL_MIB = 200
FLOOR_SCRIPT = (
    "import fastapi, uvicorn, aiokafka, eventsourcing.postgres, psycopg, pydantic, orjson, shared.service, shared.eventstore\n"
    "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])"
)


def library_floor_mib() -> float:
    out = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout.strip()) / 1024


async def run_stage(run: Run, result: StageResult) -> None:
    run.baselines["memory.floor_mib"] = result.add(
        "python + service libraries (floor)", await asyncio.to_thread(library_floor_mib), "MiB"
    ).value
    run.snapshot_memory("end")
    for phase, services in run.memory.items():
        for service, mib in services.items():
            note = f"over the {GOAL_MIB} MiB goal" if mib > GOAL_MIB else ""
            result.compare(f"{service} RSS {phase}", mib, "MiB", "memory.floor_mib", run.baselines, note=note)
    for service in list(run.env.procs):
        if run.env.running(service):
            peak = run.env.rss_mb(service)[1]
            note = f"over the {GOAL_MIB} MiB goal" if peak > GOAL_MIB else ""
            result.compare(f"{service} RSS peak (whole run)", round(peak, 1), "MiB", "memory.floor_mib", run.baselines, note=note)
    if not run.memory:
        result.add("services measured", 0, "services", note="no service was running")
