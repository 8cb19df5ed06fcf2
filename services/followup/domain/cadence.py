"""The SOP cadence and the recycling deadlines: which tasks a lead needs next, and when (pure).

A claim asks for a first contact within the grade's time; every contact asks for the next one
within the grade's interval (and at the time agreed with the customer, if later than that it is
planned too); entering some stages asks for a stage task (``quoted`` → feedback on the quote).
The recycle reminder comes ``reminder_lead`` before the assignment service would recycle the lead
for lack of follow-up. Times come from events, which may be dated at the ends of the calendar: every
sum is :func:`shared.clock.shifted`, held at the end rather than overflowing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.clock import shifted
from shared.events import Grade, Stage

FIRST_CONTACT = "first_contact"
CADENCE = "cadence"
AGREED_FOLLOW_UP = "agreed_follow_up"
RECYCLE_WARNING = "recycle_warning"


@dataclass(frozen=True)
class GradeCadence:
    """How soon a lead of one grade must be contacted after a claim, and how often after that."""

    first_contact: timedelta
    every: timedelta


@dataclass(frozen=True)
class StageTask:
    """A task raised when a lead enters a stage, due ``after`` that moment."""

    kind: str
    title: str
    after: timedelta


@dataclass(frozen=True)
class Sop:
    """The standard operating procedure: cadence per grade, tasks per stage entered."""

    grades: Mapping[Grade, GradeCadence]
    stages: Mapping[Stage, StageTask]
    default_grade: Grade = "B"

    def for_grade(self, grade: Grade | None) -> GradeCadence:
        """A lead seen claimed before its capture has no grade yet: it follows the default grade."""
        return self.grades.get(grade or self.default_grade) or self.grades[self.default_grade]


@dataclass(frozen=True)
class RecyclePolicy:
    """The assignment service's recycling rules, mirrored to warn the owner before they apply."""

    first_contact_sla: timedelta
    follow_up_sla: timedelta
    reminder_lead: timedelta


@dataclass(frozen=True)
class Rules:
    """Everything time-based a LeadFile needs to plan its tasks."""

    sop: Sop
    recycle: RecyclePolicy


@dataclass(frozen=True)
class PlannedTask:
    kind: str
    title: str
    due_at: datetime


@dataclass(frozen=True)
class Deadline:
    """When the lead would be recycled, and when its owner is warned (None: no warning left to raise)."""

    recycle_at: datetime
    remind_at: datetime | None


def first_contact_task(rules: Rules, grade: Grade | None, claimed_at: datetime) -> PlannedTask:
    due = shifted(claimed_at, rules.sop.for_grade(grade).first_contact)
    return PlannedTask(FIRST_CONTACT, "First contact with the new lead", due)


def tasks_after_contact(
    rules: Rules, grade: Grade | None, contacted_at: datetime, agreed_at: datetime | None, next_step: str | None
) -> list[PlannedTask]:
    """The next contact per the grade's cadence, and the one agreed with the customer.

    The cadence is a minimum: an agreed time within it replaces the cadence task, a later one
    comes on top of it.
    """
    cadence_due = shifted(contacted_at, rules.sop.for_grade(grade).every)
    planned = []
    if agreed_at is not None:
        planned.append(PlannedTask(AGREED_FOLLOW_UP, next_step or "Follow up as agreed with the customer", agreed_at))
    if agreed_at is None or agreed_at > cadence_due:
        planned.append(PlannedTask(CADENCE, "Regular follow-up per the SOP cadence", cadence_due))
    return planned


def tasks_on_entering(rules: Rules, stage: Stage, entered_at: datetime) -> list[PlannedTask]:
    task = rules.sop.stages.get(stage)
    return [] if task is None else [PlannedTask(task.kind, task.title, shifted(entered_at, task.after))]


def recycle_warning_task(deadline: Deadline) -> PlannedTask:
    title = "Follow up now: without a contact the lead returns to the public pool"
    return PlannedTask(RECYCLE_WARNING, title, deadline.recycle_at)


def _deadline(recycle_at: datetime, since: datetime, lead: timedelta) -> Deadline:
    # With a lead longer than the SLA the warning is due at once, never before the contact or claim.
    return Deadline(recycle_at, max(since, shifted(recycle_at, -lead)))


def deadline_after_claim(rules: Rules, claimed_at: datetime) -> Deadline:
    recycle = rules.recycle
    return _deadline(shifted(claimed_at, recycle.first_contact_sla), claimed_at, recycle.reminder_lead)


def deadline_after_contact(rules: Rules, contacted_at: datetime) -> Deadline:
    recycle = rules.recycle
    return _deadline(shifted(contacted_at, recycle.follow_up_sla), contacted_at, recycle.reminder_lead)
