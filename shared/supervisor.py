"""The worker runtime every service runs its background work under (relays, consumers, projectors, schedulers).

A worker is built afresh for every (re)start by the function it was started with, so a crash never
leaves a stopped client behind to be run again. The supervisor restarts a crashed worker with the
shared back-off, counts restarts, and keeps each worker's health: when it last made progress and how
much work it knows is waiting (its lag). A worker that crash-loops, or has lag and makes no progress,
makes the service unready (``/readyz`` names it), so an orchestrator and an alert notice; the worker
itself keeps trying, so the service recovers by itself once the cause is gone.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from shared.metrics import WORKER_LAST_PROGRESS, WORKER_RESTARTS
from shared.retry import RESTART, RetryPolicy

log = logging.getLogger(__name__)


class Worker(Protocol):
    async def run(self) -> None:
        """Work until :meth:`stop` (return) or a failure (raise)."""

    def stop(self) -> None:
        """Finish what is in hand, then return from :meth:`run`."""


@dataclass
class WorkerHealth:
    """What a worker tells its supervisor about itself; thread-safe enough (plain attribute writes)."""

    service: str
    name: str
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    last_progress: float = 0.0
    lag: int = 0
    restarts: deque[float] = field(default_factory=deque)
    running: bool = False
    last_error: str | None = None
    # Whether the worker finished a unit of work since it was last (re)started: one that restarted a few
    # times during an outage and works again is healthy, however recent its restarts.
    moved_since_start: bool = False

    def __post_init__(self) -> None:
        self.last_progress = self.clock()
        # Present from the start, at 0, so that an alert on the first restart has a series to rise from.
        self._restarts_total = WORKER_RESTARTS.labels(self.service, self.name)
        self._progress_gauge = WORKER_LAST_PROGRESS.labels(self.service, self.name)
        self._progress_gauge.set(self.wall_clock())

    def progressed(self) -> None:
        """A unit of work is done (or the worker looked and found none): it is alive and moving."""
        self.last_progress = self.clock()
        self.moved_since_start = True
        self._progress_gauge.set(self.wall_clock())

    def started(self) -> None:
        """A fresh worker is running: the stall clock starts now, and it has not moved yet."""
        self.running = True
        self.moved_since_start = False
        self.last_progress = self.clock()

    def report_lag(self, lag: int) -> None:
        """How much work the worker knows is waiting for it (records, events not yet published)."""
        self.lag = lag

    def restarted(self, error: BaseException) -> None:
        self.restarts.append(self.clock())
        self.last_error = f"{type(error).__name__}: {error}"
        self._restarts_total.inc()


@dataclass(frozen=True)
class HealthRules:
    """When a worker counts as not working."""

    crash_loop_restarts: int = 3
    crash_loop_window: float = 60.0
    # With work waiting, no progress for this long means stuck (a dependency that hangs rather than fails).
    stall_after: float = 30.0


Build = Callable[[WorkerHealth], Worker | Awaitable[Worker]]


class Supervisor:
    """Runs named workers, restarting each after a crash with back-off; knows which are not working."""

    def __init__(
        self,
        service: str,
        *,
        rules: HealthRules | None = None,
        restart: RetryPolicy = RESTART,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.rules = rules or HealthRules()
        self.restart = restart
        self.clock = clock
        self.sleep = sleep
        self.health: dict[str, WorkerHealth] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._current: dict[str, Worker] = {}
        self._stopping: set[str] = set()

    def start(self, name: str, build: Build) -> WorkerHealth:
        """Run the worker ``build`` makes (again after each crash) until :meth:`halt` or :meth:`stop`."""
        if name in self._tasks:
            raise ValueError(f"worker {name} is already running")
        health = self.health[name] = WorkerHealth(self.service, name, clock=self.clock)
        self._stopping.discard(name)
        self._tasks[name] = asyncio.create_task(self._supervise(name, build, health), name=f"worker-{name}")
        return health

    async def _supervise(self, name: str, build: Build, health: WorkerHealth) -> None:
        failures = 0
        while name not in self._stopping:
            started = self.clock()
            try:
                built = build(health)
                worker = await built if inspect.isawaitable(built) else built
                self._current[name] = worker
                if name in self._stopping:  # halted while it was being built
                    worker.stop()
                health.started()
                await worker.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                health.running = False
                health.restarted(exc)
                if self.clock() - started > self.rules.crash_loop_window:
                    failures = 0  # it worked for a good while: this is a new trouble, start the back-off anew
                failures += 1
                pause = self.restart.delay(failures)
                # Once per worker per 30 s at most (the logging setup's RepeatFilter): an outage is not a flood.
                log.error("worker crashed; restarting", exc_info=True, extra={"worker": name, "restart_in_s": round(pause, 2)})
                await self.sleep(pause)
            finally:
                health.running = False
                self._current.pop(name, None)

    def problems(self) -> dict[str, str]:
        """The workers that are not working, each with why (empty when all are)."""
        now = self.clock()
        found: dict[str, str] = {}
        for name, health in self.health.items():
            if name in self._stopping:
                continue
            while health.restarts and now - health.restarts[0] > self.rules.crash_loop_window:
                health.restarts.popleft()
            if len(health.restarts) >= self.rules.crash_loop_restarts and not health.moved_since_start:
                found[name] = (
                    f"crash-looping: {len(health.restarts)} restarts in {self.rules.crash_loop_window:.0f} s"
                    f" (last: {health.last_error})"
                )
            elif health.lag > 0 and now - health.last_progress > self.rules.stall_after:
                found[name] = f"stalled: no progress for {now - health.last_progress:.0f} s with {health.lag} waiting"
            elif not health.running and health.last_error is not None:
                found[name] = f"restarting after: {health.last_error}"
        return found

    async def halt(self, name: str, timeout: float = 15.0) -> None:
        """Stop one worker (it finishes what it holds), and forget it."""
        self._stopping.add(name)
        worker = self._current.get(name)
        if worker is not None:
            worker.stop()
        task = self._tasks.pop(name, None)
        if task is not None:
            done, _ = await asyncio.wait([task], timeout=timeout)
            if not done:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.health.pop(name, None)

    async def stop(self, timeout: float = 15.0) -> None:
        """Ask every worker to finish what it holds, then wait; cancel what does not finish in time."""
        self._stopping.update(self._tasks)
        for worker in list(self._current.values()):
            worker.stop()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks.values(), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
