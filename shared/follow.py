"""The loop every follower of a service's own notification log runs (the outbox relay, read-model projectors).

Work while there is work; then sleep until nudged (something was recorded) or until the poll interval
passes (something was recorded by another process). ``stop`` lets the loop finish what is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.supervisor import WorkerHealth


class FollowLoop:
    def __init__(self, poll_interval: float, health: WorkerHealth | None = None) -> None:
        self.poll_interval = poll_interval
        self.health = health
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False

    def nudge(self) -> None:
        """Something was recorded: work now rather than at the next poll (thread-safe)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def stop(self) -> None:
        self.stopping = True
        self._wakeup.set()

    async def sleep(self, seconds: float | None = None) -> None:
        """Wait for a nudge, a stop, or the poll interval (or ``seconds``), whichever comes first;
        nudges given before the call do not count."""
        self._wakeup.clear()
        await self._wait(seconds)

    async def _wait(self, seconds: float | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self.poll_interval if seconds is None else seconds)

    async def run(self, step: Callable[[], Awaitable[int]], between: Callable[[], Awaitable[object]] | None = None) -> None:
        """Call ``step`` (returns how much it did) until stopped and caught up; ``between`` runs after each idle wait.

        A nudge that arrives while ``step`` runs is kept: it may be for something recorded after ``step`` read,
        so the loop goes round again at once instead of waiting for the poll interval."""
        self._loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            did = await step()
            if self.health is not None:
                self.health.progressed()
            if did:
                continue
            if self.stopping:
                return
            await self._wait()
            if between is not None:
                await between()
