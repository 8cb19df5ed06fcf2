"""Claims on one lead take turns on the event loop, so that waiting for a turn costs no worker thread.

Of 100 simultaneous claims on one lead, the first goes to a worker thread and records its claim; the
other 99 wait here, then each is answered from memory (``AssignmentApplication.settled_claim``)
without a thread, a transaction or a database round trip. The application's own per-lead lock still
orders commands that reach it from elsewhere (other routes, consumers, the scheduler).
"""

from __future__ import annotations

import asyncio

STRIPES = 1024


class LeadTurns:
    """One asyncio lock per stripe of lead ids; create it on the event loop that uses it."""

    def __init__(self, stripes: int = STRIPES) -> None:
        self._locks = [asyncio.Lock() for _ in range(stripes)]

    def of(self, lead_id: str) -> asyncio.Lock:
        return self._locks[hash(lead_id) % len(self._locks)]
