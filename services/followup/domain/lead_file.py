"""The LeadFile aggregate: one per lead, everything followup records and decides about it.

It learns the lead's grade and owner from the topic (capture, scoring, claims, releases), records
the owner's contacts, moves the lead along the pipeline, and keeps the lead's tasks: it schedules
them per the SOP, completes them when a contact satisfies them, marks them overdue once, and
cancels them when the owner goes. Time, actors and rules come in as arguments; nothing here does I/O.

Commands are the public methods; each records one or more small events (the ``_``-methods
decorated with ``@event``), which are all the state is rebuilt from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.followup.domain.cadence import (
    Deadline,
    PlannedTask,
    Rules,
    deadline_after_claim,
    deadline_after_contact,
    first_contact_task,
    recycle_warning_task,
    tasks_after_contact,
    tasks_on_entering,
)
from services.followup.domain.contact import Actor, Contact, Logged, check_contact
from services.followup.domain.errors import FormerOwner, NoOwner, NotOwner, TaskNotFound, TaskNotOpen
from services.followup.domain.pipeline import is_open, stage_after_contact
from services.followup.domain.tasks import Task
from shared.events import Channel, Grade, Stage

# {"correlation_id": ..., "causation_id": ...}: which request or upstream event led to a change.
Trace = dict[str, str | None]


def lead_file_id(lead_id: str) -> UUID:
    """A lead's file has the lead's own id (leads are UUIDs across LeadFlow); ValueError for anything else."""
    return UUID(lead_id)


class LeadFile(Aggregate):
    @staticmethod
    def create_id(lead_id: str, **_: Any) -> UUID:
        return lead_file_id(lead_id)

    @event("Opened")
    def __init__(self, *, lead_id: str, grade: Grade | None, at: datetime, trace: Trace) -> None:
        self.lead_id = str(self.id)  # the lead's id in canonical form (the file's id is the lead's, see create_id)
        self.grade = grade
        self.opened_at = at
        self.stage: Stage = "new"
        self.owner: str | None = None
        self.owner_since: datetime | None = None
        self.released_from: str | None = None  # the last owner, once the lead went back to the pool
        self.follow_ups: list[dict[str, Any]] = []
        self.stage_history: list[dict[str, Any]] = []
        self.tasks: dict[str, Task] = {}
        self.deadline: Deadline | None = None
        self.outcome: dict[str, Any] | None = None

    # -- facts learned from the topic ---------------------------------------------------------

    def learn_grade(self, grade: Grade, at: datetime, trace: Trace) -> None:
        if grade != self.grade:
            self._grade_changed(grade=grade, at=at, trace=trace)

    def claim(self, rep_id: str, at: datetime, rules: Rules, trace: Trace) -> None:
        """A rep now owns the lead: the former owner's tasks go, the first contact is planned."""
        if rep_id == self.owner:
            return
        self._cancel_pending("reassigned", at, trace)
        self._claimed(rep_id=rep_id, at=at, trace=trace)
        if not is_open(self.stage):
            return
        if self.stage == "new":
            self._stage_changed(from_stage="new", to_stage="assigned", rep_id=rep_id, changed_by=None, at=at, trace=trace)
        self._schedule(first_contact_task(rules, self.grade, at), at, trace)
        self._set_deadline(deadline_after_claim(rules, at), at, trace)

    def release(self, rep_id: str, reason: str, at: datetime, trace: Trace) -> None:
        """The owner lost the lead (to the pool): their tasks are cancelled and the lead is ``new`` again."""
        if rep_id != self.owner:
            return  # the release of someone who no longer owns it changes nothing here
        self._cancel_pending("released", at, trace)
        self._released(rep_id=rep_id, reason=reason, at=at, trace=trace)
        if is_open(self.stage) and self.stage != "new":
            self._stage_changed(from_stage=self.stage, to_stage="new", rep_id=None, changed_by=None, at=at, trace=trace)
        if self.deadline is not None:
            self._deadline_set(recycle_at=None, remind_at=None, at=at, trace=trace)

    # -- commands from people -------------------------------------------------------------------

    def log_follow_up(self, *, actor: Actor, contact: Contact, at: datetime, rules: Rules, trace: Trace) -> Logged:
        """Record a contact: it completes the lead's pending tasks, may move the stage, and plans what is next."""
        if self.owner is None and actor.actor_id == self.released_from and not actor.supervisor:
            raise FormerOwner("The lead was released from you; it is in the public pool now.")
        if self.owner is None:
            raise NoOwner("Nobody owns this lead; it must be claimed before follow-ups are logged.")
        if actor.actor_id != self.owner and not actor.supervisor:
            raise NotOwner("Only the lead's owner or a manager may log a follow-up.")
        before = self.stage
        target = stage_after_contact(before, contact.stage)
        check_contact(contact, before, target, at)
        follow_up_id = str(uuid5(self.id, f"follow-up:{len(self.follow_ups)}"))
        self._follow_up_logged(
            follow_up_id=follow_up_id,
            rep_id=actor.actor_id,
            channel=contact.channel,
            summary=contact.summary,
            pain_points=contact.pain_points,
            objections=contact.objections,
            next_step=contact.next_step,
            next_follow_up_at=contact.next_follow_up_at,
            stage=target,
            tags=list(contact.tags),
            at=at,
            trace=trace,
        )
        if not is_open(before):
            return Logged(follow_up_id, target)  # a note on a closed deal: nothing to plan
        for task in self.pending_tasks():
            self._task_completed(
                task_id=task.task_id,
                rep_id=task.rep_id,
                follow_up_id=follow_up_id,
                completed_by=actor.actor_id,
                on_time=at <= task.due_at,
                at=at,
                trace=trace,
            )
        if target != before:
            self._stage_changed(
                from_stage=before, to_stage=target, rep_id=self.owner, changed_by=actor.actor_id, at=at, trace=trace
            )
        if target == "won":
            self._won(amount=contact.won_amount, currency=contact.currency, by=actor.actor_id, at=at, trace=trace)
        elif target == "lost":
            self._lost(reason=contact.lost_reason, by=actor.actor_id, at=at, trace=trace)
        if not is_open(target):
            self._deadline_set(recycle_at=None, remind_at=None, at=at, trace=trace)
            return Logged(follow_up_id, target)
        planned = tasks_on_entering(rules, target, at) if target != before else []
        planned += tasks_after_contact(rules, self.grade, at, contact.next_follow_up_at, contact.next_step)
        for plan in planned:
            self._schedule(plan, at, trace)
        self._set_deadline(deadline_after_contact(rules, at), at, trace)
        return Logged(follow_up_id, target)

    def complete_task(self, *, task_id: str, actor: Actor, at: datetime, rules: Rules, trace: Trace) -> Task:
        """Done by hand. Completing a done task again changes nothing; the cadence goes on if nothing else is open."""
        task = self.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if actor.actor_id != task.rep_id and not actor.supervisor:
            raise NotOwner("Only the task's rep or a manager may complete it.")
        if task.status == "done":
            return task
        if task.status == "cancelled":
            raise TaskNotOpen(f"The task was cancelled ({task.cancel_reason}).")
        self._task_completed(
            task_id=task_id,
            rep_id=task.rep_id,
            follow_up_id=None,
            completed_by=actor.actor_id,
            on_time=at <= task.due_at,
            at=at,
            trace=trace,
        )
        if self.owner is not None and is_open(self.stage) and not self.pending_tasks():
            cadence = tasks_after_contact(rules, self.grade, at, None, None)
            for plan in cadence:
                self._schedule(plan, at, trace)
        return task

    # -- time-based rules (the scheduler) ---------------------------------------------------------

    def mark_overdue(self, task_id: str, at: datetime, manager_of: Callable[[str], str | None], trace: Trace) -> bool:
        """Re-checked here, whatever the scheduler's index said: each task becomes overdue once, if still open."""
        task = self.tasks.get(task_id)
        if task is None or task.status != "open" or task.due_at > at:
            return False
        self._task_overdue(
            task_id=task_id, rep_id=task.rep_id, due_at=task.due_at, escalated_to=manager_of(task.rep_id), at=at, trace=trace
        )
        return True

    def raise_recycle_reminder(self, at: datetime, trace: Trace) -> bool:
        """Warn the owner once per deadline that the lead is about to be recycled for lack of follow-up."""
        deadline = self.deadline
        if deadline is None or deadline.remind_at is None or deadline.remind_at > at:
            return False
        if self.owner is None or not is_open(self.stage):
            return False
        self._schedule(recycle_warning_task(deadline), at, trace)
        self._deadline_set(recycle_at=deadline.recycle_at, remind_at=None, at=at, trace=trace)
        return True

    # -- queries ------------------------------------------------------------------------------------

    def pending_tasks(self) -> list[Task]:
        return [task for task in self.tasks.values() if task.pending]

    # -- helpers that record --------------------------------------------------------------------------

    def _schedule(self, plan: PlannedTask, at: datetime, trace: Trace) -> None:
        assert self.owner is not None
        task_id = str(uuid5(self.id, f"task:{len(self.tasks)}"))
        self._task_scheduled(
            task_id=task_id, rep_id=self.owner, kind=plan.kind, title=plan.title, due_at=plan.due_at, at=at, trace=trace
        )

    def _set_deadline(self, deadline: Deadline, at: datetime, trace: Trace) -> None:
        self._deadline_set(recycle_at=deadline.recycle_at, remind_at=deadline.remind_at, at=at, trace=trace)

    def _cancel_pending(self, reason: str, at: datetime, trace: Trace) -> None:
        for task in self.pending_tasks():
            self._task_cancelled(task_id=task.task_id, rep_id=task.rep_id, reason=reason, at=at, trace=trace)

    # -- events ----------------------------------------------------------------------------------------

    @event("GradeChanged")
    def _grade_changed(self, *, grade: Grade, at: datetime, trace: Trace) -> None:
        self.grade = grade

    @event("Claimed")
    def _claimed(self, *, rep_id: str, at: datetime, trace: Trace) -> None:
        self.owner = rep_id
        self.owner_since = at

    @event("Released")
    def _released(self, *, rep_id: str, reason: str, at: datetime, trace: Trace) -> None:
        self.owner = None
        self.owner_since = None
        self.released_from = rep_id

    @event("StageChanged")
    def _stage_changed(
        self, *, from_stage: Stage, to_stage: Stage, rep_id: str | None, changed_by: str | None, at: datetime, trace: Trace
    ) -> None:
        self.stage = to_stage
        self.stage_history.append({"from_stage": from_stage, "to_stage": to_stage, "changed_by": changed_by, "at": at})

    @event("FollowUpLogged")
    def _follow_up_logged(
        self,
        *,
        follow_up_id: str,
        rep_id: str,
        channel: Channel,
        summary: str,
        pain_points: str | None,
        objections: str | None,
        next_step: str | None,
        next_follow_up_at: datetime | None,
        stage: Stage,
        tags: list[str],
        at: datetime,
        trace: Trace,
    ) -> None:
        self.follow_ups.append(
            {
                "follow_up_id": follow_up_id,
                "rep_id": rep_id,
                "channel": channel,
                "summary": summary,
                "pain_points": pain_points,
                "objections": objections,
                "next_step": next_step,
                "next_follow_up_at": next_follow_up_at,
                "stage": stage,
                "tags": tags,
                "logged_at": at,
            }
        )

    @event("Won")
    def _won(self, *, amount: float | None, currency: str | None, by: str, at: datetime, trace: Trace) -> None:
        self.outcome = {"stage": "won", "amount": amount, "currency": currency, "by": by, "at": at}

    @event("Lost")
    def _lost(self, *, reason: str | None, by: str, at: datetime, trace: Trace) -> None:
        self.outcome = {"stage": "lost", "reason": reason, "by": by, "at": at}

    @event("TaskScheduled")
    def _task_scheduled(
        self, *, task_id: str, rep_id: str, kind: str, title: str, due_at: datetime, at: datetime, trace: Trace
    ) -> None:
        self.tasks[task_id] = Task(task_id, rep_id, kind, title, due_at, scheduled_at=at)

    @event("TaskCompleted")
    def _task_completed(
        self,
        *,
        task_id: str,
        rep_id: str,
        follow_up_id: str | None,
        completed_by: str,
        on_time: bool,
        at: datetime,
        trace: Trace,
    ) -> None:
        task = self.tasks[task_id]
        task.status, task.completed_at, task.on_time, task.follow_up_id = "done", at, on_time, follow_up_id

    @event("TaskOverdue")
    def _task_overdue(
        self, *, task_id: str, rep_id: str, due_at: datetime, escalated_to: str | None, at: datetime, trace: Trace
    ) -> None:
        task = self.tasks[task_id]
        task.status, task.escalated_to = "overdue", escalated_to

    @event("TaskCancelled")
    def _task_cancelled(self, *, task_id: str, rep_id: str, reason: str, at: datetime, trace: Trace) -> None:
        task = self.tasks[task_id]
        task.status, task.cancel_reason = "cancelled", reason

    @event("DeadlineSet")
    def _deadline_set(self, *, recycle_at: datetime | None, remind_at: datetime | None, at: datetime, trace: Trace) -> None:
        self.deadline = None if recycle_at is None else Deadline(recycle_at, remind_at)
