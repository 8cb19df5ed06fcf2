"""The scheduler's tick: open tasks that fell due become overdue (and are escalated), recycle reminders are raised.

It reads only the task board's indexes of what is due, so a tick costs what is due, not what exists;
the LeadFile re-checks each candidate before recording anything, so a stale index row is harmless
and each task becomes overdue at most once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.followup import SERVICE
from services.followup.app import FollowupApplication
from services.followup.escalation import Escalation
from services.followup.task_board import TaskBoard
from shared.clock import Clock
from shared.metrics import SCHEDULER_ACTIONS


@dataclass(frozen=True)
class TickResult:
    overdue: int
    reminders: int


class DueWatch:
    def __init__(
        self, app: FollowupApplication, board: TaskBoard, escalation: Escalation, clock: Clock, batch_size: int = 500
    ) -> None:
        self.app = app
        self.board = board
        self.escalation = escalation
        self.clock = clock
        self.batch_size = batch_size

    def tick(self) -> TickResult:
        now = self.clock()
        trace = {"correlation_id": str(uuid.uuid4()), "causation_id": None}
        due = self.board.due_open_tasks(now, self.batch_size)
        overdue = self.app.mark_overdue(due, now, self.escalation.manager_of, trace) if due else 0
        leads = self.board.due_reminders(now, self.batch_size)
        reminders = self.app.raise_recycle_reminders(leads, now, trace) if leads else 0
        if overdue:
            SCHEDULER_ACTIONS.labels(SERVICE, "task_overdue", "due_passed").inc(overdue)
        if reminders:
            SCHEDULER_ACTIONS.labels(SERVICE, "recycle_reminder", "no_follow_up").inc(reminders)
        return TickResult(overdue, reminders)
