"""Time comes in from the edge: domain code takes ``now`` as a parameter, services take a Clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to (for tests of time rules without sleeping)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


# The ends of Python's calendar, as aware UTC datetimes. A valid event may carry a time at either end
# (``9999-12-31T23:59:59Z`` is RFC 3339); adding a rule's duration to it must not crash a worker.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def shifted(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, held at the end of the calendar it would run past (a deadline "never")."""
    try:
        return moment + delta
    except OverflowError:
        end = LATEST if delta > timedelta(0) else EARLIEST
        return end if moment.tzinfo is not None else end.replace(tzinfo=None)
