"""The recycling scheduler: each tick releases the leads whose deadline has passed.

It reads only the deadlines index (due rows, by an index range scan) and lets each lead's
aggregate re-check its rule before releasing it: the aggregate is the truth, the index only says
where to look.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from services.assignment import SERVICE
from services.assignment.app import AssignmentApplication, Released
from services.assignment.readmodel import ReadModel
from shared.clock import Clock
from shared.metrics import SCHEDULER_ACTIONS

log = logging.getLogger(__name__)


class Recycler:
    def __init__(
        self,
        app: AssignmentApplication,
        readmodel: ReadModel,
        clock: Clock,
        *,
        batch_size: int = 500,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.readmodel = readmodel
        self.clock = clock
        self.batch_size = batch_size
        self.on_recorded = on_recorded

    def tick(self) -> list[Released]:
        """Release every lead due at the clock's now (blocking); returns what was released."""
        now = self.clock()
        released: list[Released] = []
        after: tuple[datetime, str] | None = None
        while due := self.readmodel.due_leads(now, self.batch_size, after):
            batch = self.app.recycle([lead_id for _, lead_id in due], now)
            for item in batch:
                SCHEDULER_ACTIONS.labels(SERVICE, "release", item.reason).inc()
            released.extend(batch)
            if len(due) < self.batch_size:
                break
            after = due[-1]
        if released:
            log.info("recycled leads", extra={"released": len(released)})
            self.on_recorded()
        return released
