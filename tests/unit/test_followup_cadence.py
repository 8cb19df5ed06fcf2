"""SOP cadence rules: first contact per grade, the next contact, stage tasks, recycle reminders."""

from datetime import UTC, datetime, timedelta

from services.followup.domain.cadence import (
    AGREED_FOLLOW_UP,
    CADENCE,
    FIRST_CONTACT,
    GradeCadence,
    RecyclePolicy,
    Rules,
    Sop,
    StageTask,
    deadline_after_claim,
    deadline_after_contact,
    first_contact_task,
    tasks_after_contact,
    tasks_on_entering,
)
from shared.clock import EARLIEST, LATEST, FakeClock, shifted

H = timedelta(hours=1)
D = timedelta(days=1)
SOP = Sop(
    grades={"A": GradeCadence(24 * H, 84 * H), "B": GradeCadence(48 * H, 7 * D), "C": GradeCadence(48 * H, 30 * D)},
    stages={"quoted": StageTask("quote_feedback", "Call for feedback on the quote", 3 * D)},
    default_grade="B",
)
RULES = Rules(SOP, RecyclePolicy(first_contact_sla=48 * H, follow_up_sla=7 * D, reminder_lead=1 * D))


def clock():
    return FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


def test_first_contact_is_due_per_grade():
    now = clock()()
    assert first_contact_task(RULES, "A", now).due_at == now + 24 * H
    assert first_contact_task(RULES, "B", now).due_at == now + 48 * H
    assert first_contact_task(RULES, "A", now).kind == FIRST_CONTACT


def test_a_lead_without_a_grade_follows_the_default_grade():
    now = clock()()
    assert first_contact_task(RULES, None, now).due_at == now + 48 * H


def test_grade_a_is_followed_up_at_least_twice_a_week_b_weekly_c_monthly():
    c = clock()
    for grade, every in (("A", 84 * H), ("B", 7 * D), ("C", 30 * D)):
        (task,) = tasks_after_contact(RULES, grade, c(), None, None)
        assert (task.kind, task.due_at) == (CADENCE, c() + every)
    week = c() + 7 * D
    contacts, at = 0, c()
    while at < week:
        (task,) = tasks_after_contact(RULES, "A", at, None, None)
        at = task.due_at
        contacts += at <= week
    assert contacts >= 2


def test_an_agreed_time_within_the_cadence_replaces_the_cadence_task():
    c = clock()
    (task,) = tasks_after_contact(RULES, "B", c(), c() + 2 * D, "send the brochure")
    assert (task.kind, task.title, task.due_at) == (AGREED_FOLLOW_UP, "send the brochure", c() + 2 * D)


def test_an_agreed_time_past_the_cadence_keeps_the_cadence_minimum():
    c = clock()
    tasks = tasks_after_contact(RULES, "A", c(), c() + 10 * D, None)
    assert [(t.kind, t.due_at) for t in tasks] == [(AGREED_FOLLOW_UP, c() + 10 * D), (CADENCE, c() + 84 * H)]


def test_entering_quoted_asks_for_feedback_in_three_days():
    c = clock()
    (task,) = tasks_on_entering(RULES, "quoted", c())
    assert (task.kind, task.due_at) == ("quote_feedback", c() + 3 * D)
    assert tasks_on_entering(RULES, "qualified", c()) == []


def test_the_recycle_reminder_comes_a_day_before_the_sla_runs_out():
    c = clock()
    claim = deadline_after_claim(RULES, c())
    assert (claim.recycle_at, claim.remind_at) == (c() + 48 * H, c() + 24 * H)
    contact = deadline_after_contact(RULES, c.advance(5 * H))
    assert (contact.recycle_at, contact.remind_at) == (c() + 7 * D, c() + 6 * D)


def test_a_reminder_lead_longer_than_the_sla_reminds_at_once():
    short = Rules(SOP, RecyclePolicy(first_contact_sla=6 * timedelta(seconds=1), follow_up_sla=H, reminder_lead=D))
    now = clock()()
    assert deadline_after_claim(short, now).remind_at == now


# --- times at the ends of the calendar (valid RFC 3339, e.g. a LeadClaimed dated 9999-12-31T23:59:59Z) ---

END = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
START = datetime(1, 1, 1, tzinfo=UTC)


def test_a_claim_at_the_end_of_the_calendar_is_due_then_not_an_overflow():
    assert first_contact_task(RULES, "A", END).due_at == LATEST
    assert [t.due_at for t in tasks_after_contact(RULES, "A", END, None, None)] == [LATEST]
    assert tasks_on_entering(RULES, "quoted", END)[0].due_at == LATEST
    deadline = deadline_after_claim(RULES, END)
    assert deadline.recycle_at == LATEST
    assert deadline.remind_at == END  # never before the claim itself


def test_a_warning_lead_longer_than_the_time_since_the_start_of_the_calendar_is_held_at_the_contact():
    long_lead = Rules(SOP, RecyclePolicy(first_contact_sla=1 * H, follow_up_sla=1 * H, reminder_lead=10 * D))
    assert deadline_after_contact(long_lead, START).remind_at == START
    assert deadline_after_claim(long_lead, START).recycle_at == START + H


def test_shifted_holds_at_either_end_and_keeps_naive_times_naive():
    assert shifted(END, D) == LATEST
    assert shifted(START, -D) == EARLIEST
    assert shifted(END.replace(tzinfo=None), D) == LATEST.replace(tzinfo=None)
    assert shifted(START, D) == START + D
