"""followup's event-sourced application: commands over LeadFile aggregates, retried on version conflicts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError

from services.followup.domain.cadence import Rules
from services.followup.domain.contact import Actor, Contact, Logged
from services.followup.domain.lead_file import LeadFile, Trace, lead_file_id
from services.followup.domain.tasks import Task
from shared.eventstore import EventSourcedApplication
from shared.retry import COMMAND_RACES

T = TypeVar("T")


class LeadNotFound(LookupError):
    """followup has not learned of this lead from the topic (yet)."""


class FollowupApplication(EventSourcedApplication):
    name = "followup"

    def __init__(self, env: dict[str, str], rules: Rules) -> None:
        super().__init__(env=env)
        self.rules = rules
        self._listeners: list[Callable[[], None]] = []

    def on_recorded(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (thread-safe, cheap) whenever events were recorded: wakes the relay and the projector."""
        self._listeners.append(listener)

    def _notify(self, recordings: list[Any]) -> None:
        for listener in self._listeners:
            listener()

    # -- queries ------------------------------------------------------------------------------------

    def lead_file(self, lead_id: str) -> LeadFile | None:
        return self.get_or_none(lead_file_id(lead_id))

    # -- commands from people ---------------------------------------------------------------------

    def log_follow_up(self, lead_id: str, actor: Actor, contact: Contact, now: datetime, trace: Trace) -> Logged:
        return self._command(
            lead_id, lambda file: file.log_follow_up(actor=actor, contact=contact, at=now, rules=self.rules, trace=trace)
        )

    def complete_task(self, lead_id: str, task_id: str, actor: Actor, now: datetime, trace: Trace) -> Task:
        return self._command(
            lead_id, lambda file: file.complete_task(task_id=task_id, actor=actor, at=now, rules=self.rules, trace=trace)
        )

    # -- time-based rules -------------------------------------------------------------------------

    def mark_overdue(
        self, due: Sequence[tuple[str, str]], now: datetime, manager_of: Callable[[str], str | None], trace: Trace
    ) -> int:
        """``due``: (lead_id, task_id) pairs the index found due; each LeadFile re-checks before recording."""
        by_lead: dict[str, list[str]] = {}
        for lead_id, task_id in due:
            by_lead.setdefault(lead_id, []).append(task_id)

        def mark(file: LeadFile) -> int:
            return sum(file.mark_overdue(task_id, now, manager_of, trace) for task_id in by_lead[file.lead_id])

        return self._for_each(by_lead, mark)

    def raise_recycle_reminders(self, lead_ids: Sequence[str], now: datetime, trace: Trace) -> int:
        return self._for_each(lead_ids, lambda file: int(file.raise_recycle_reminder(now, trace)))

    # -- plumbing -----------------------------------------------------------------------------------

    def _command(self, lead_id: str, change: Callable[[LeadFile], T]) -> T:
        """Load, change, save; a concurrent writer (a command, the consumer, the scheduler) means: again, from fresh state."""

        def attempt() -> T:
            file = self.lead_file(lead_id)
            if file is None:
                raise LeadNotFound(lead_id)
            result = change(file)
            if file.pending_events:
                self.save(file)
            return result

        return COMMAND_RACES.call(attempt)

    def _for_each(self, lead_ids: Iterable[str], change: Callable[[LeadFile], int]) -> int:
        """One transaction for the whole batch; if a lead moved on meanwhile, each lead on its own instead."""
        ids = list(lead_ids)
        files = [file for file in (self.lead_file(lead_id) for lead_id in ids) if file is not None]
        done = sum(change(file) for file in files)
        changed = [file for file in files if file.pending_events]
        if not changed:
            return 0
        try:
            self.save(*changed)
            return done
        except IntegrityError:
            total = 0
            for file in changed:
                try:
                    total += self._command(file.lead_id, change)
                except LeadNotFound:
                    continue
            return total
