"""A periodic worker for time-based rules (recycling, overdue tasks), stoppable between ticks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.supervisor import WorkerHealth


class Ticker:
    """Runs ``tick`` (a blocking function, in a thread) every ``interval`` seconds until stopped.

    A tick that fails ends :meth:`run` with its error: the supervisor restarts the ticker with back-off,
    counts it, and a ticker that keeps failing makes the service unready instead of failing in silence."""

    def __init__(self, name: str, interval: float, tick: Callable[[], object], health: WorkerHealth | None = None) -> None:
        self.name = name
        self.interval = interval
        self.tick = tick
        self.health = health
        self._stop = asyncio.Event()

    @classmethod
    def worker(cls, name: str, interval: timedelta, tick: Callable[[], object]) -> Callable[[WorkerHealth], Ticker]:
        """How the supervisor builds this ticker (afresh on every start)."""
        return lambda health: cls(name, interval.total_seconds(), tick, health)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            await asyncio.to_thread(self.tick)
            if self.health is not None:
                self.health.progressed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
