"""Who is told what: the notify policy over an in-memory directory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notify.domain.notices import Lead, Person, Rules, decide, due_soon
from shared.events import (
    FollowUpTaskCompleted,
    FollowUpTaskOverdue,
    FollowUpTaskScheduled,
    LeadCaptured,
    LeadClaimed,
    LeadWon,
)

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
RULES = Rules(first_contact_sla=timedelta(hours=48), due_soon_before=timedelta(hours=1), max_event_age=timedelta(hours=1))


class Directory:
    def __init__(self, people: list[Person], leads: dict[str, Lead]) -> None:
        self.people = {p.rep_id: p for p in people}
        self.leads = leads

    def lead(self, lead_id):
        return self.leads.get(lead_id)

    def person(self, rep_id):
        return self.people.get(rep_id)

    def team(self, team):
        return [p for p in self.people.values() if p.team == team]


FACTS = Directory(
    [
        Person("rep-1", "李雷", team="east", manager="mgr-1", email="lilei@example.com"),
        Person("rep-2", "韩梅梅", team="east", manager="mgr-1"),
        Person("rep-3", "Old Timer", team="east", manager="mgr-1", active=False),
        Person("rep-9", "Elsewhere", team="west", manager="mgr-2"),
        Person("mgr-1", "张经理", role="manager", team=None),
    ],
    {"L1": Lead("王芳", "A", 85, "华东制造")},
)


def scheduled(task_id: str, due_in: timedelta, kind: str = "call", title: str = "回访") -> FollowUpTaskScheduled:
    return FollowUpTaskScheduled(lead_id="L1", task_id=task_id, rep_id="rep-1", kind=kind, title=title, due_at=NOW + due_in)


def claimed(how: str, **extra) -> LeadClaimed:
    return LeadClaimed(lead_id="L1", rep_id="rep-1", how=how, protected_until=NOW + timedelta(days=30), **extra)


def test_a_lead_assigned_tells_the_rep_its_name_grade_score_and_first_contact_deadline():
    effects = decide(claimed("assign", assigned_by="mgr-1"), NOW, NOW, FACTS, RULES)
    (notice,) = effects.notices
    assert (notice.recipient, notice.kind, notice.lead_id) == ("rep-1", "lead_assigned", "L1")
    assert notice.params.items() >= {"lead_name": "王芳", "grade": "A", "score": 85, "assigned_by": "张经理"}.items()
    assert notice.params["deadline"] == "2026-03-04T01:00:00Z"
    assert decide(claimed("auto"), NOW, NOW, FACTS, RULES).notices[0].kind == "lead_assigned"


def test_a_rep_who_claimed_or_reported_a_lead_themself_is_not_told():
    assert decide(claimed("claim"), NOW, NOW, FACTS, RULES).notices == []
    assert decide(claimed("report"), NOW, NOW, FACTS, RULES).notices == []


def test_history_older_than_the_limit_tells_nobody():
    assert decide(claimed("assign"), NOW - timedelta(hours=2), NOW, FACTS, RULES).notices == []


def test_an_overdue_task_tells_the_rep_and_the_manager_it_was_escalated_to():
    overdue = FollowUpTaskOverdue(lead_id="L1", task_id="T1", rep_id="rep-1", due_at=NOW, escalated_to="mgr-1")
    effects = decide(overdue, NOW, NOW, FACTS, RULES)
    assert [(n.recipient, n.kind) for n in effects.notices] == [("rep-1", "task_overdue"), ("mgr-1", "task_escalated")]
    assert effects.notices[1].params["rep_name"] == "李雷"
    assert effects.settled_tasks == ["T1"]


def test_a_won_deal_tells_the_rest_of_the_team_and_its_manager_but_not_the_winner_nor_the_inactive():
    won = LeadWon(lead_id="L1", rep_id="rep-1", amount=120000.0, currency="CNY")
    notices = decide(won, NOW, NOW, FACTS, RULES).notices
    assert sorted(n.recipient for n in notices) == ["mgr-1", "rep-2"]
    assert {n.kind for n in notices} == {"deal_won"} and notices[0].params["rep_name"] == "李雷"


def test_a_scheduled_task_is_a_reminder_an_hour_before_and_a_recycle_warning_is_told_at_once():
    task = scheduled("T2", timedelta(hours=5))
    effects = decide(task, NOW, NOW, FACTS, RULES)
    (reminder,) = effects.reminders
    assert effects.notices == [] and reminder.remind_at == NOW + timedelta(hours=4)
    soon = scheduled("T3", timedelta(minutes=10))
    assert decide(soon, NOW, NOW, FACTS, RULES).reminders[0].remind_at == NOW  # due within the hour: remind now
    warning = FollowUpTaskScheduled(
        lead_id="L1", task_id="T4", rep_id="rep-1", kind="recycle_warning", title="即将回收", due_at=NOW + timedelta(hours=3)
    )
    (notice,) = decide(warning, NOW, NOW, FACTS, RULES).notices
    assert notice.kind == "recycle_warning" and notice.params["recycle_at"] == "2026-03-02T04:00:00Z"


def test_a_reminder_is_dropped_once_the_task_is_due_and_done_tasks_settle_it():
    task = scheduled("T2", timedelta(hours=5))
    (reminder,) = decide(task, NOW, NOW, FACTS, RULES).reminders
    assert due_soon(reminder, NOW + timedelta(hours=4)).kind == "task_due_soon"
    assert due_soon(reminder, NOW + timedelta(hours=5)) is None
    done = FollowUpTaskCompleted(lead_id="L1", task_id="T2", rep_id="rep-1", completed_at=NOW, on_time=True)
    assert decide(done, NOW, NOW, FACTS, RULES).settled_tasks == ["T2"]


def test_events_that_concern_nobody_tell_nobody():
    captured = LeadCaptured(lead_id="L2", name="x", phone="+8613800000000", source="web", score=1, grade="C", captured_by="api")
    effects = decide(captured, NOW, NOW, FACTS, RULES)
    assert (effects.notices, effects.reminders, effects.settled_tasks) == ([], [], [])
