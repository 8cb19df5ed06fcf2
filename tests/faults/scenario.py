"""One fault run: a mixed load starts, the fault strikes and is cleared, the system's recovery is measured
while the load goes on, and a little more load follows; everything seen on the way is kept for the tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.e2e.conftest import Services
from tests.faults.load import MixedLoad, Outcome
from tests.faults.readiness import ReadinessWatch
from tests.faults.recovery import Recovery, measure_recovery, streams_count

# Requests before the fault, and after the recovery (or after giving up on it); the load also runs
# through the fault, so each run sends a few hundred requests in all, never more than LOAD_LIMIT.
BEFORE, AFTER, LOAD_LIMIT = 50, 50, 500
READY_BEFORE = 60.0  # seconds every process gets to be ready before a fault (the previous one may be recent)
# Seconds the system gets, after the run's load, to show every acknowledged write everywhere and to apply
# the whole topic: one deadline for all the checks of a run, however many wait for it.
CATCH_UP = 20.0
REPORTED: list[Recovery] = []  # printed at the end of the session (see conftest.py)


@dataclass
class FaultRun:
    recovery: Recovery
    load: MixedLoad
    readiness: ReadinessWatch
    struck_at: float  # time.monotonic() when the fault struck
    cleared_at: float  # ... when it was cleared (the process restarted, the server back up)
    counted_before: int | None  # events the streams worker counted just before the fault (None: no answer)
    killed: str | None = None  # the process killed, for a process kill
    poison: set[tuple[int, int]] = field(default_factory=set)  # (partition, offset) of records produced as poison
    # Leads only poison names (never captured): what a service validly records in answer to such a record (followup
    # opens a lead's file from a claim) is as orphaned as the poison, and analytics parks it too, as unknown-lead.
    stray_leads: set[str] = field(default_factory=set)
    settled_by: float = 0.0  # time.monotonic() by which what the system shows is final

    def __post_init__(self) -> None:
        self.settled_by = time.monotonic() + CATCH_UP

    def answers(self, start: float = 0.0, end: float = float("inf")) -> list[Outcome]:
        return [o for o in self.load.outcomes if start <= o.started <= end]


# Strikes the fault and clears it; returns (struck at, cleared at). Runs while the load does.
Fault = Callable[[], Awaitable[tuple[float, float]]]


async def all_ready(services: Services, timeout: float = READY_BEFORE) -> None:
    for name in services.ports:
        await asyncio.to_thread(services.wait_ready, name, timeout)


async def run_fault(
    services: Services, recovery: Recovery, fault: Fault, give_up_after: float, killed: str | None = None
) -> FaultRun:
    await all_ready(services)
    load, readiness = MixedLoad(services, limit=LOAD_LIMIT), ReadinessWatch(services)
    readiness.start()
    load.start()
    try:
        await load.sent(BEFORE)
        counted_before = await streams_count(services)
        struck_at, cleared_at = await fault()
        if cleared_at > struck_at:
            recovery.outage = cleared_at - struck_at
        await measure_recovery(services, recovery, cleared_at, give_up_after)
        await load.sent(AFTER)
    finally:
        await load.stop()
        await readiness.stop()
    REPORTED.append(recovery)
    print(f"\n[faults] {recovery.line()}; load: {load.acknowledged.count()} acknowledged of {len(load.outcomes)} requests")
    return FaultRun(recovery, load, readiness, struck_at, cleared_at, counted_before, killed)


def kill_and_restart(services: Services, name: str) -> Fault:
    """kill -9 of one process, restarted at once (as a supervisor would)."""

    async def fault() -> tuple[float, float]:
        struck_at = time.monotonic()
        await asyncio.to_thread(services.stop, name, True)
        services.start(name)
        return struck_at, struck_at

    return fault


# How long a server stays down after its SIGKILL before it is started again: long enough for every
# service and client to meet the outage (readiness is asked 4 times a second).
HELD_DOWN = 3.0


def kill_server(kill: Callable[[], None], start: Callable[[], None]) -> Fault:
    async def fault() -> tuple[float, float]:
        struck_at = time.monotonic()
        await asyncio.to_thread(kill)
        await asyncio.sleep(HELD_DOWN)
        await asyncio.to_thread(start)
        return struck_at, time.monotonic()

    return fault
