"""A follow-up task as a LeadFile holds it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

TaskStatus = Literal["open", "overdue", "done", "cancelled"]


@dataclass
class Task:
    task_id: str
    rep_id: str
    kind: str
    title: str
    due_at: datetime
    scheduled_at: datetime
    status: TaskStatus = "open"
    escalated_to: str | None = None
    completed_at: datetime | None = None
    on_time: bool | None = None
    follow_up_id: str | None = None
    cancel_reason: str | None = None

    @property
    def pending(self) -> bool:
        """Still to be done: open, or overdue (an overdue task can still be done, late)."""
        return self.status in ("open", "overdue")
