"""What every process's readiness page said, a few times a second, while a fault ran its course."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from tests.e2e.conftest import Services

INTERVAL = 0.25
# /readyz must answer, whatever is down: a readiness probe that hangs is as bad as one that lies.
TIMEOUT = 5.0


@dataclass(frozen=True)
class Reading:
    process: str
    at: float  # time.monotonic() when asked
    status: int | None  # None: no answer (the process is down, or the page hung)
    error: str | None = None


class ReadinessWatch:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.readings: list[Reading] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        # One loop per process, so that a page slow to answer does not space out the others' readings.
        self._tasks = [asyncio.create_task(self._watch(name)) for name in self.services.ports]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, name: str) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            while True:
                await asyncio.gather(self._ask(client, name), asyncio.sleep(INTERVAL))

    async def _ask(self, client: httpx.AsyncClient, name: str) -> None:
        at = time.monotonic()
        try:
            response = await client.get(self.services.ready_url(name))
        except httpx.HTTPError as exc:
            error = "timeout" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
            self.readings.append(Reading(name, at, None, error))
            return
        self.readings.append(Reading(name, at, response.status_code))

    def of(self, process: str, start: float = 0.0, end: float = float("inf")) -> list[Reading]:
        return [r for r in self.readings if r.process == process and start <= r.at <= end]

    def summary(self, process: str, start: float = 0.0, end: float = float("inf")) -> str:
        """The answers in order, repeats collapsed: ``200 ×12, 503 ×30, 200 ×4``."""
        runs: list[list] = []
        for reading in self.of(process, start, end):
            answer = reading.status or reading.error
            if runs and runs[-1][0] == answer:
                runs[-1][1] += 1
            else:
                runs.append([answer, 1])
        return ", ".join(f"{answer} ×{count}" for answer, count in runs) or "nothing"
