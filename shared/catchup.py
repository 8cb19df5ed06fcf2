"""Waiting, bounded, for what a service has not consumed or projected yet, instead of answering wrongly.

Services learn of a lead from the topic a little after the service that recorded it answered (its relay
publishes from the outbox, then the consumer reads), and a service's lists trail its own writes by a
projector's step. A request that would be refused, or a list that would be stale, only because of that
waits here first, on the positions its workers report (shared.positions):

- :class:`CatchUp`: a request that found the lead unknown (or not owned by the caller) waits until the
  consumer has applied the lead's partition up to its end as of the request, and for a grace period
  after the request re-reads the end (an event recorded upstream before the request may still be in
  its producer's outbox), trying the request again as the partition moves; then it decides. A read that
  gathers other services' events (analytics' 360 view) can settle the same way before it answers.
- :class:`OwnWrites`: a list waits until its read model's projector has passed the newest notification
  the service's event store held when the list was asked for (read your own writes, on any replica).
- :func:`not_yet_seen`: the answer when waiting did not help (``urn:leadflow:problem:not-yet-seen``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from shared.positions import LOG
from shared.problems import Problem

if TYPE_CHECKING:
    from shared.config import ServiceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
NOT_YET_SEEN = "not-yet-seen"


class Followed(Protocol):
    """What :class:`CatchUp` waits on (:class:`TopicPositions`; a fake in unit tests)."""

    def partition_of(self, key: str) -> int | None: ...

    async def end_offset(self, partition: int) -> int | None: ...

    async def applied(self, partition: int) -> int | None: ...

    async def changed(self, partition: int | None, timeout: float) -> None: ...


@dataclass(frozen=True)
class Caught:
    """How a wait ended: ``seen`` (the request's condition now holds), and whether the consumer had applied the
    lead's partition up to its end (as of the end of the grace period) when it gave up."""

    seen: bool
    caught_up: bool


class NotYetSeen(Exception):
    """A refusal that waiting for the consumer did not lift: ``refusal`` is the last one, ``caught_up`` says
    whether the service had read everything on the lead's partition (published by the end of the grace)."""

    def __init__(self, refusal: Exception, caught_up: bool) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal
        self.caught_up = caught_up


class CatchUp:
    """Waits for a lead's partition on behalf of one request (see the module's docstring)."""

    def __init__(
        self,
        followed: Followed,
        *,
        timeout: float = 2.0,
        grace: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.followed = followed
        self.timeout = timeout
        self.grace = min(grace, timeout)
        self.clock = clock

    @classmethod
    def configured(cls, followed: Followed, settings: ServiceSettings) -> CatchUp:
        """With the service's ``LEADFLOW_CATCH_UP_TIMEOUT`` and ``LEADFLOW_CATCH_UP_GRACE``."""
        return cls(followed, timeout=settings.catch_up_timeout.total_seconds(), grace=settings.catch_up_grace.total_seconds())

    async def until(self, key: str, known: Callable[[], Awaitable[bool]]) -> Caught:
        """Wait until ``known()`` (asked again whenever the lead's partition moved on) says yes, or until the
        consumer has applied the partition to its end as of the request and of the grace's end, or the timeout."""
        start = self.clock()
        deadline, grace_ends = start + self.timeout, start + self.grace
        end: int | None = None
        end_after_grace = False
        tried: int | None = None  # the applied position as of which ``known`` last said no
        asked = False
        while True:
            partition = self.followed.partition_of(key)
            position = await self.followed.applied(partition) if partition is not None else None
            if not asked or (position is not None and (tried is None or position > tried)):
                # The position is read before asking: what is applied after it counts as a move, and is asked about.
                if await known():
                    return Caught(True, True)
                asked, tried = True, position
            now = self.clock()
            if partition is not None and (end is None or (now >= grace_ends and not end_after_grace)):
                end_after_grace = now >= grace_ends
                end = await self._end_offset(partition, deadline)
                now = self.clock()
            caught_up = end is not None and position is not None and position >= end
            if caught_up and end_after_grace:
                return Caught(False, True)
            if now >= deadline:
                return Caught(False, caught_up)
            # Caught up with the request's end: only new arrivals (until the grace ends) can still tell.
            wake = grace_ends if caught_up else deadline
            await self.followed.changed(partition, max(0.0, wake - now))

    async def settle(self, key: str) -> bool:
        """Wait until the consumer has applied the key's partition up to its end as of the grace's end: what was
        recorded upstream before now and published within the grace is then applied. True if it got there in time."""

        async def never() -> bool:
            return False

        return (await self.until(key, never)).caught_up

    async def attempt(self, key: str, command: Callable[[], Awaitable[T]], unseen: tuple[type[Exception], ...]) -> T:
        """Run ``command``; while it raises one of ``unseen`` (refusals that may only mean "not consumed yet",
        which record nothing), wait for the lead's partition and run it again. Raises :class:`NotYetSeen`
        with the last refusal when waiting did not lift it."""
        try:
            return await command()
        except unseen:
            pass
        result: list[T] = []
        refusal: list[Exception] = []

        async def known() -> bool:
            try:
                result.append(await command())
                return True
            except unseen as exc:
                refusal[:] = [exc]
                return False

        caught = await self.until(key, known)
        if caught.seen:
            return result[0]
        raise NotYetSeen(refusal[0], caught.caught_up)

    async def _end_offset(self, partition: int, deadline: float) -> int | None:
        try:
            async with asyncio.timeout(max(0.001, deadline - self.clock())):
                return await self.followed.end_offset(partition)
        except TimeoutError:
            return None


class Projected(Protocol):
    """What :class:`OwnWrites` waits on (:class:`Positions` of a projector; a fake in unit tests)."""

    def position(self, partition: int = LOG) -> int | None: ...

    async def changed(self, partition: int | None, timeout: float) -> None: ...


class OwnWrites:
    """Read your own writes: a list waits until the read model's projector has passed ``newest()`` (the event
    store's newest notification id, whichever replica recorded it), nudging the projector; at most ``timeout``."""

    def __init__(
        self,
        newest: Callable[[], int | None],
        projected: Projected,
        nudge: Callable[[], None],
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.newest = newest
        self.projected = projected
        self.nudge = nudge
        self.timeout = timeout
        self.clock = clock

    async def wait(self) -> bool:
        """True once the read model reflects every write recorded before the call; False when the timeout
        passed first (the list is then served as it stands: the projector is far behind, or not running)."""
        target = await asyncio.to_thread(self.newest) or 0
        deadline = self.clock() + self.timeout
        while (self.projected.position(LOG) or 0) < target:
            now = self.clock()
            if now >= deadline:
                log.warning("list served behind its writes", extra={"newest": target, "projected": self.projected.position(LOG)})
                return False
            self.nudge()
            await self.projected.changed(LOG, deadline - now)
        return True


def not_yet_seen(status: int, detail: str, *, caught_up: bool, retry_after: int = 1) -> Problem:
    """The answer to a request that depends on an event this service has not consumed, after waiting for it."""
    return Problem(
        status,
        NOT_YET_SEEN,
        detail,
        title="Not seen yet",
        headers={"Retry-After": str(retry_after)},
        caught_up=caught_up,
    )
