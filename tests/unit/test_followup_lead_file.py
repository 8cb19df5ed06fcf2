"""The LeadFile aggregate: ownership, contacts, stage moves and the life of tasks, on a fake clock."""

from datetime import UTC, datetime

import pytest
from eventsourcing.application import Application

from services.followup.domain.contact import Actor, Contact
from services.followup.domain.errors import FormerOwner, InvalidFollowUp, NoOwner, NotOwner, TaskNotFound, TaskNotOpen
from services.followup.domain.lead_file import LeadFile
from services.followup.domain.pipeline import StageMoveForbidden
from shared.clock import LATEST
from tests.unit.test_followup_cadence import RULES, D, H, clock

LEAD = "5b0c7d1e-8a8e-4d2a-9a51-0f6f2f1b9c01"
TRACE = {"correlation_id": "c-1", "causation_id": None}
REP = Actor("rep-1")
MANAGER = Actor("m-1", supervisor=True)


def claimed(grade="A"):
    c = clock()
    file = LeadFile(lead_id=LEAD, grade=grade, at=c(), trace=TRACE)
    file.claim("rep-1", c(), RULES, TRACE)
    return file, c


def names(file):
    return [type(e).__name__ for e in file.collect_events()]


def pending(file):
    return [(t.kind, t.due_at) for t in file.pending_tasks()]


def test_a_claim_assigns_the_lead_and_schedules_the_first_contact_per_grade():
    file, c = claimed("A")
    assert (file.owner, file.stage) == ("rep-1", "assigned")
    assert pending(file) == [("first_contact", c() + 24 * H)]
    assert names(file) == ["Opened", "Claimed", "StageChanged", "TaskScheduled", "DeadlineSet"]


def test_a_contact_completes_the_task_and_plans_the_next_one():
    file, c = claimed("B")
    (first,) = file.pending_tasks()
    logged = file.log_follow_up(actor=REP, contact=Contact("phone", "intro call"), at=c.advance(5 * H), rules=RULES, trace=TRACE)
    assert logged.stage == "contacted" == file.stage
    assert (first.status, first.on_time, first.follow_up_id) == ("done", True, logged.follow_up_id)
    assert pending(file) == [("cadence", c() + 7 * D)]
    assert file.deadline.recycle_at == c() + 7 * D


def test_a_late_contact_completes_the_task_late():
    file, c = claimed("A")
    (first,) = file.pending_tasks()
    file.log_follow_up(actor=REP, contact=Contact("phone", "sorry, late"), at=c.advance(30 * H), rules=RULES, trace=TRACE)
    assert (first.status, first.on_time) == ("done", False)


def test_entering_quoted_raises_the_feedback_task_and_the_agreed_time_replaces_the_cadence():
    file, c = claimed("B")
    agreed = c() + 2 * D
    file.log_follow_up(
        actor=REP,
        contact=Contact("visit", "sent the quote", stage="quoted", next_follow_up_at=agreed, next_step="walk through the quote"),
        at=c(),
        rules=RULES,
        trace=TRACE,
    )
    assert file.stage == "quoted"
    assert sorted(pending(file)) == [("agreed_follow_up", agreed), ("quote_feedback", c() + 3 * D)]
    moves = [(m["from_stage"], m["to_stage"]) for m in file.stage_history]
    assert moves == [("new", "assigned"), ("assigned", "quoted")]


def test_only_the_owner_or_a_manager_may_log_and_nothing_is_recorded_otherwise():
    file, c = claimed()
    file.collect_events()
    with pytest.raises(NotOwner):
        file.log_follow_up(actor=Actor("rep-2"), contact=Contact("phone", "x"), at=c(), rules=RULES, trace=TRACE)
    assert file.collect_events() == []
    file.log_follow_up(actor=MANAGER, contact=Contact("phone", "covering"), at=c(), rules=RULES, trace=TRACE)
    assert file.follow_ups[-1]["rep_id"] == "m-1"


def test_once_the_release_is_seen_the_former_owner_is_refused_as_not_the_owner():
    file, c = claimed()
    file.release(REP.actor_id, "manual", c(), TRACE)
    file.collect_events()
    with pytest.raises(FormerOwner):
        file.log_follow_up(actor=REP, contact=Contact("phone", "x"), at=c(), rules=RULES, trace=TRACE)
    with pytest.raises(NoOwner):
        file.log_follow_up(actor=Actor("rep-2"), contact=Contact("phone", "x"), at=c(), rules=RULES, trace=TRACE)
    assert file.collect_events() == []


def test_an_unowned_lead_cannot_be_worked():
    c = clock()
    file = LeadFile(lead_id=LEAD, grade="A", at=c(), trace=TRACE)
    with pytest.raises(NoOwner):
        file.log_follow_up(actor=MANAGER, contact=Contact("phone", "x"), at=c(), rules=RULES, trace=TRACE)


@pytest.mark.parametrize(
    ("contact", "field"),
    [
        (Contact("phone", "x", next_follow_up_at=None, stage="lost"), "lost_reason"),
        (Contact("phone", "x", lost_reason="price"), "lost_reason"),
        (Contact("phone", "x", won_amount=10.0, stage="quoted"), "won_amount"),
        (Contact("phone", "x", currency="CNY"), "currency"),
    ],
)
def test_reports_that_do_not_fit_the_move_are_refused(contact, field):
    file, c = claimed()
    file.collect_events()
    with pytest.raises(InvalidFollowUp) as refused:
        file.log_follow_up(actor=REP, contact=contact, at=c(), rules=RULES, trace=TRACE)
    assert refused.value.field == field
    assert file.collect_events() == []


def test_the_next_follow_up_must_be_in_the_future():
    file, c = claimed()
    for when in (c(), c() - H):
        with pytest.raises(InvalidFollowUp, match="future"):
            file.log_follow_up(actor=REP, contact=Contact("phone", "x", next_follow_up_at=when), at=c(), rules=RULES, trace=TRACE)


def test_won_is_final_and_ends_every_plan():
    file, c = claimed()
    file.log_follow_up(
        actor=REP,
        contact=Contact("meeting", "signed", stage="won", won_amount=12000.0, currency="CNY"),
        at=c(),
        rules=RULES,
        trace=TRACE,
    )
    assert (file.stage, file.outcome["amount"], file.pending_tasks(), file.deadline) == ("won", 12000.0, [], None)
    file.collect_events()
    with pytest.raises(StageMoveForbidden):
        file.log_follow_up(actor=REP, contact=Contact("phone", "x", stage="negotiating"), at=c(), rules=RULES, trace=TRACE)
    file.log_follow_up(actor=REP, contact=Contact("phone", "after-sale check"), at=c.advance(D), rules=RULES, trace=TRACE)
    assert names(file) == ["FollowUpLogged"]


def test_lost_needs_a_reason_and_records_it():
    file, c = claimed()
    file.log_follow_up(
        actor=REP, contact=Contact("phone", "no budget", stage="lost", lost_reason="budget"), at=c(), rules=RULES, trace=TRACE
    )
    assert (file.stage, file.outcome["reason"]) == ("lost", "budget")
    assert "Lost" in names(file)


def test_a_release_cancels_the_former_owners_tasks_and_the_lead_is_new_again():
    file, c = claimed()
    file.log_follow_up(actor=REP, contact=Contact("phone", "hello"), at=c(), rules=RULES, trace=TRACE)
    file.collect_events()
    file.release("rep-1", "no_follow_up", c.advance(8 * D), TRACE)
    assert (file.owner, file.stage, file.pending_tasks(), file.deadline) == (None, "new", [], None)
    assert names(file) == ["TaskCancelled", "Released", "StageChanged", "DeadlineSet"]
    file.release("rep-1", "manual", c(), TRACE)
    assert names(file) == []


def test_a_reassignment_moves_the_tasks_to_the_new_owner():
    file, c = claimed()
    (old,) = file.pending_tasks()
    file.claim("rep-2", c.advance(H), RULES, TRACE)
    assert old.status == "cancelled" and old.cancel_reason == "reassigned"
    assert [t.rep_id for t in file.pending_tasks()] == ["rep-2"]
    file.collect_events()
    file.claim("rep-2", c(), RULES, TRACE)
    assert names(file) == []


def test_a_task_becomes_overdue_once_only_when_due_and_escalates_to_the_manager():
    file, c = claimed("A")
    (task,) = file.pending_tasks()
    assert not file.mark_overdue(task.task_id, c.advance(23 * H), lambda rep: "m-east", TRACE)
    assert file.mark_overdue(task.task_id, c.advance(2 * H), lambda rep: "m-east", TRACE)
    assert (task.status, task.escalated_to) == ("overdue", "m-east")
    assert not file.mark_overdue(task.task_id, c.advance(H), lambda rep: "m-east", TRACE)
    file.log_follow_up(actor=REP, contact=Contact("phone", "finally"), at=c(), rules=RULES, trace=TRACE)
    assert (task.status, task.on_time) == ("done", False)
    assert not file.mark_overdue(task.task_id, c.advance(D), lambda rep: "m-east", TRACE)


def test_the_recycle_reminder_is_raised_once_a_day_before_recycling():
    file, c = claimed("B")
    assert not file.raise_recycle_reminder(c.advance(23 * H), TRACE)
    assert file.raise_recycle_reminder(c.advance(H), TRACE)
    warning = [t for t in file.pending_tasks() if t.kind == "recycle_warning"]
    assert [t.due_at for t in warning] == [c() + 24 * H]
    assert not file.raise_recycle_reminder(c.advance(H), TRACE)


def test_completing_by_hand_is_idempotent_and_keeps_the_cadence_going():
    file, c = claimed("B")
    (task,) = file.pending_tasks()
    with pytest.raises(NotOwner):
        file.complete_task(task_id=task.task_id, actor=Actor("rep-2"), at=c(), rules=RULES, trace=TRACE)
    file.complete_task(task_id=task.task_id, actor=REP, at=c.advance(H), rules=RULES, trace=TRACE)
    assert task.status == "done" and pending(file) == [("cadence", c() + 7 * D)]
    file.collect_events()
    file.complete_task(task_id=task.task_id, actor=REP, at=c(), rules=RULES, trace=TRACE)
    assert names(file) == []
    with pytest.raises(TaskNotFound):
        file.complete_task(task_id="nope", actor=REP, at=c(), rules=RULES, trace=TRACE)


def test_a_cancelled_task_cannot_be_completed():
    file, c = claimed()
    (task,) = file.pending_tasks()
    file.release("rep-1", "manual", c(), TRACE)
    with pytest.raises(TaskNotOpen):
        file.complete_task(task_id=task.task_id, actor=MANAGER, at=c(), rules=RULES, trace=TRACE)


def test_the_state_is_rebuilt_from_the_recorded_events():
    file, c = claimed("A")
    file.log_follow_up(actor=REP, contact=Contact("wechat", "demo", stage="qualified"), at=c.advance(H), rules=RULES, trace=TRACE)
    (task,) = file.pending_tasks()
    file.mark_overdue(task.task_id, c.advance(5 * D), lambda rep: "m-1", TRACE)
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.save(file)
    again = app.repository.get(file.id)
    assert (again.stage, again.owner, again.follow_ups, again.deadline) == (
        file.stage,
        file.owner,
        file.follow_ups,
        file.deadline,
    )
    assert again.tasks == file.tasks


def test_a_claim_dated_at_the_end_of_the_calendar_plans_its_tasks_at_the_end():
    end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    file = LeadFile(lead_id=LEAD, grade="A", at=end, trace=TRACE)
    file.claim("rep-1", end, RULES, TRACE)
    assert pending(file) == [("first_contact", LATEST)]
    assert file.deadline.recycle_at == LATEST
