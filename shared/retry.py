"""The one retry policy: bounded attempts, exponential back-off with full jitter.

Every place that tries again (a command losing a version race, a consumer's handler meeting a
database hiccup, a worker restarting after a crash) uses this, so limits and spacing are the same
everywhere and tests can drive it with a fake sleep and a fixed random source.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError

T = TypeVar("T")

# Transient by nature: a version conflict with a concurrent writer (fresh state may succeed), and
# I/O that failed on the way (a dropped connection, a timeout; a pool timeout is a psycopg
# OperationalError; eventsourcing re-raises psycopg's as its own). Anything else is a bug or bad data,
# and trying again would only repeat it: that is what a consumer parks, never one of these.
TRANSIENT: tuple[type[BaseException], ...] = (
    IntegrityError,
    psycopg.OperationalError,
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
)


def permanent(exc: BaseException) -> bool:
    """A failure of one of the transient kinds that is the data's fault, and would fail the same way again.

    PostgreSQL's class 54 (program limit exceeded: a value too large for an index row, a statement too
    complex) arrives as psycopg's OperationalError, as an outage does; retried, a valid event with a huge
    string would hold its consumer forever instead of being parked. eventsourcing re-raises it as its own."""
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    return isinstance(cause, psycopg.Error) and (cause.sqlstate or "").startswith("54")


class GaveUp(Exception):
    """Every attempt failed; ``__cause__`` is the last failure."""

    def __init__(self, attempts: int, last: BaseException) -> None:
        super().__init__(f"gave up after {attempts} attempts: {last!r}")
        self.attempts = attempts
        self.last = last


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; before try n+1 a random pause in [0, min(cap, base * 2**n)]."""

    attempts: int = 5
    base: float = 0.005
    cap: float = 1.0
    retry_on: tuple[type[BaseException], ...] = TRANSIENT
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def delay(self, failures: int) -> float:
        """The pause after ``failures`` consecutive failures (1 = after the first)."""
        return self.rng() * min(self.cap, self.base * 2 ** (failures - 1))

    def delays(self) -> Iterator[float]:
        """The pauses between the attempts (``attempts - 1`` of them)."""
        for failures in range(1, self.attempts):
            yield self.delay(failures)

    def retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on) and not permanent(exc)

    def call(self, fn: Callable[[], T], *, sleep: Callable[[float], object] = time.sleep) -> T:
        """``fn()`` until it returns; a failure not in ``retry_on`` propagates at once, the last one as GaveUp."""
        for failures, pause in enumerate([*self.delays(), None], start=1):
            try:
                return fn()
            except self.retry_on as exc:
                if permanent(exc):
                    raise
                if pause is None:
                    raise GaveUp(failures, exc) from exc
                sleep(pause)
        raise AssertionError("unreachable")

    async def acall(self, fn: Callable[[], Awaitable[T]], *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> T:
        """As :meth:`call`, for a coroutine function."""
        for failures, pause in enumerate([*self.delays(), None], start=1):
            try:
                return await fn()
            except self.retry_on as exc:
                if permanent(exc):
                    raise
                if pause is None:
                    raise GaveUp(failures, exc) from exc
                await sleep(pause)
        raise AssertionError("unreachable")


# A command racing concurrent writers of the same aggregate (a version conflict: fresh state may succeed).
# Only the conflict: an I/O failure in a command is answered (503) at once rather than retried here.
COMMAND_RACES = RetryPolicy(attempts=30, base=0.001, cap=0.05, retry_on=(IntegrityError,))
# A consumer's handler before it parks the records it cannot apply: long enough to ride out a
# brief database hiccup, short enough that a poison record does not hold its partition for long.
HANDLER = RetryPolicy(attempts=4, base=0.1, cap=1.0)
# A worker restarting after a crash: recovery within seconds once its dependency is back.
RESTART = RetryPolicy(attempts=1_000_000, base=0.25, cap=5.0)
