"""Group commit for single captures: concurrent ``POST /leads`` share one event-store transaction.

Every save takes the event store's table lock, so writers are serialised and one save per request caps
throughput (and latency under load) at what one thread can commit. A single writer thread instead takes
whatever captures queued up while it was saving and records them together with ``capture_many``, which
keeps the per-phone guarantees (two captures of one phone in one group: one lead, one duplicate). With no
load a capture is saved at once; there is no waiting for a group to fill.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future

from services.intake.app import IntakeApplication, Outcome
from services.intake.domain import NewLead
from shared.clock import Clock

log = logging.getLogger(__name__)

_STOP = object()


class CaptureCoalescer:
    def __init__(self, app: IntakeApplication, clock: Clock, max_group: int = 500) -> None:
        self.app = app
        self.clock = clock
        self.max_group = max_group
        self._queue: queue.SimpleQueue[tuple[NewLead, str | None, Future[Outcome]] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="intake-capture-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Record what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    async def capture(self, new: NewLead, correlation_id: str | None) -> Outcome:
        future: Future[Outcome] = Future()
        self._queue.put((new, correlation_id, future))
        return await asyncio.wrap_future(future)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    group.append(item)
                if len(group) >= self.max_group:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if group:
                self._record(group)

    def _record(self, group: list) -> None:
        try:
            outcomes = self.app.capture_many(
                [new for new, _, _ in group], now=self.clock(), correlation_ids=[cid for _, cid, _ in group]
            )
        except Exception as exc:  # each waiting request answers with it; the writer carries on
            log.warning("group capture failed", extra={"leads": len(group), "error": repr(exc)})
            for _, _, future in group:
                future.set_exception(exc)
            return
        for (_, _, future), outcome in zip(group, outcomes, strict=True):
            future.set_result(outcome)
