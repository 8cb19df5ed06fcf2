"""The customer 360 fold: a pure function of the lead's events, now and as of a past moment."""

from datetime import UTC, datetime, timedelta

from services.analytics.domain import ERASED, fold_customer, may_view
from services.analytics.projections import Fact
from services.analytics.synthetic import History
from shared.consumer import Delivered
from shared.events import (
    FollowUpTaskOverdue,
    LeadRecaptured,
    LeadScored,
    LeadStageChanged,
    PersonalDataErased,
    make_envelope,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def payloads(history: History) -> list[Fact]:
    return [Fact.of(Delivered(0, offset, e, e.payload())) for offset, e in enumerate(history.events)]


def add(history: History, payload, when: datetime) -> History:
    history.events.append(make_envelope(payload, service="test", time=when))
    return history


def lifecycle() -> History:
    h = History().capture(at(0), source="web_form", region="华东", industry="制造")
    add(h, LeadRecaptured(lead_id=h.lead_id, source="trade_show", captured_by="booth"), at(5))
    add(h, LeadScored(lead_id=h.lead_id, score=85, grade="A", previous_score=60, previous_grade="B"), at(6))
    h.claim(at(10), "rep-1")
    h.follow_up(at(40), "rep-1", "contacted")
    h.task(at(40), "rep-1", due=at(60 * 24))
    h.release(at(120), "rep-1", "no_follow_up")
    h.claim(at(180), "rep-2", how="assign")
    h.follow_up(at(200), "rep-2", "qualified")
    h.won(at(300), "rep-2")
    return h


def test_the_view_carries_profile_scores_sources_ownerships_stages_timeline_and_first_response():
    h = lifecycle()
    view = fold_customer(payloads(h), h.lead_id)
    assert view is not None
    assert view.profile["region"] == "华东" and view.source == "web_form"
    assert [r.source for r in view.recaptures] == ["trade_show"]
    assert (view.score, view.grade) == (85, "A")
    assert [(s.score, s.grade) for s in view.score_history] == [(60, "B"), (85, "A")]
    assert view.owner is not None and view.owner.rep_id == "rep-2" and view.owner.how == "assign"
    first, second = view.ownership_history
    assert (first.rep_id, first.claimed_at, first.released_at, first.release_reason) == ("rep-1", at(10), at(120), "no_follow_up")
    assert second.released_at is None
    assert [s.stage for s in view.stage_history] == ["new", "assigned", "contacted", "new", "assigned", "qualified", "won"]
    assert view.stage == "won" and view.outcome is not None and view.outcome.result == "won"
    assert [f.rep_id for f in view.follow_ups] == ["rep-1", "rep-2"]
    assert view.first_response is not None
    assert (view.first_response.rep_id, view.first_response.seconds) == ("rep-1", 40 * 60)
    assert [t.title for t in view.open_tasks] == ["回访"]


def test_as_of_answers_as_the_view_stood_then():
    h = lifecycle()
    before_release = fold_customer(payloads(h), h.lead_id, as_of=at(119))
    assert before_release.owner.rep_id == "rep-1" and before_release.owner.released_at is None
    assert before_release.stage == "contacted" and before_release.outcome is None
    assert before_release.last_event_at == at(40)
    in_pool = fold_customer(payloads(h), h.lead_id, as_of=at(150))
    assert in_pool.owner is None and in_pool.stage == "new"
    assert in_pool.ownership_history[0].release_reason == "no_follow_up"
    assert fold_customer(payloads(h), h.lead_id, as_of=at(-1)) is None


def test_as_of_skips_later_times_even_when_they_come_earlier_on_the_topic():
    h = History().capture(at(0)).claim(at(10), "rep-1")
    h.events.insert(1, make_envelope(LeadScored(lead_id=h.lead_id, score=90, grade="A"), service="intake", time=at(20)))
    assert fold_customer(payloads(h), h.lead_id, as_of=at(15)).score == 60


def test_open_tasks_drop_done_ones_and_flag_overdue_ones():
    h = History().capture(at(0)).claim(at(1), "rep-1")
    h.task(at(1), "rep-1", due=at(30), done_at=at(20))
    h.task(at(2), "rep-1", due=at(60))
    late = h.events[-1].data["task_id"]
    add(h, FollowUpTaskOverdue(lead_id=h.lead_id, task_id=late, rep_id="rep-1", due_at=at(60)), at(61))
    view = fold_customer(payloads(h), h.lead_id)
    assert [(t.task_id, t.overdue) for t in view.open_tasks] == [(late, True)]


def test_a_claim_over_an_owner_closes_the_previous_ownership_as_reassigned():
    h = History().capture(at(0)).claim(at(1), "rep-1").claim(at(2), "rep-2", how="assign")
    view = fold_customer(payloads(h), h.lead_id)
    assert [(o.rep_id, o.release_reason) for o in view.ownership_history] == [("rep-1", "reassigned"), ("rep-2", None)]


def test_erasure_drops_personal_data_from_the_view():
    h = History().capture(at(0)).claim(at(1), "rep-1").follow_up(at(2), "rep-1", "contacted")
    add(h, PersonalDataErased(lead_id=h.lead_id, erased_by="dpo"), at(3))
    view = fold_customer(payloads(h), h.lead_id)
    assert view.personal_data_erased and view.profile == {}
    assert view.follow_ups[0].summary == ERASED


def test_reps_see_their_own_leads_and_the_pool_others_see_all():
    h = History().capture(at(0))
    pool = fold_customer(payloads(h), h.lead_id)
    owned = fold_customer(payloads(h.claim(at(1), "rep-1")), h.lead_id)
    assert may_view(pool, "rep", "rep-9")
    assert may_view(owned, "rep", "rep-1") and not may_view(owned, "rep", "rep-9")
    assert all(may_view(owned, role, "x") for role in ("manager", "admin", "integration"))


def test_a_second_capture_of_a_known_lead_restates_nothing():
    h = History().capture(at(0), source="web_form", region="华东").claim(at(10), "rep-1")
    h.follow_up(at(20), "rep-1", "contacted")
    h.capture(at(30), source="import", region="华南")  # a new CloudEvents id for a lead already captured
    view = fold_customer(payloads(h), h.lead_id)
    assert (view.source, view.profile["region"], view.captured_at, view.stage) == ("web_form", "华东", at(0), "contacted")
    assert [s.stage for s in view.stage_history] == ["new", "assigned", "contacted"]


def test_a_lead_never_captured_has_no_view():
    stray = History().claim(at(10), "rep-1").follow_up(at(20), "rep-1", "contacted")
    assert fold_customer(payloads(stray), stray.lead_id) is None


def stage_moved(history: History, when: datetime, from_stage: str, to_stage: str, rep: str | None) -> History:
    return add(history, LeadStageChanged(lead_id=history.lead_id, from_stage=from_stage, to_stage=to_stage, rep_id=rep), when)


def test_histories_are_in_the_order_things_happened_not_in_topic_order():
    """followup's new → assigned, dated at the claim, lands on the topic after assignment's later release."""
    h = History().capture(at(0)).claim(at(1), "rep-1").release(at(2), "rep-1")
    stage_moved(h, at(1), "new", "assigned", "rep-1")
    view = fold_customer(payloads(h), h.lead_id)
    assert [(s.stage, s.at) for s in view.stage_history] == [("new", at(0)), ("assigned", at(1)), ("new", at(2))]
    assert view.stage == "new" and view.owner is None
    assert fold_customer(payloads(h), h.lead_id, as_of=at(1.5)).stage == "assigned"


def test_the_view_does_not_depend_on_the_order_events_were_published_in():
    h = lifecycle()
    shuffled = History(h.lead_id)
    shuffled.events = list(reversed(h.events))
    in_order, reversed_order = fold_customer(payloads(h), h.lead_id), fold_customer(payloads(shuffled), h.lead_id)
    assert reversed_order == in_order
    assert [o.rep_id for o in reversed_order.ownership_history] == ["rep-1", "rep-2"]
    assert reversed_order.ownership_history[0].released_at == at(120)


def test_a_move_by_the_former_owner_after_a_reassignment_does_not_change_the_stage():
    """The race: followup accepted rep-1's follow-up before it consumed the reassignment to rep-2; then, consuming
    it, it went back to new and to assigned for rep-2. assignment ends at assigned, and so does the view."""
    h = History().capture(at(0)).claim(at(1), "rep-1").follow_up(at(2), "rep-1", "contacted")
    stage_moved(h, at(2), "assigned", "contacted", "rep-1")
    h.release(at(4), "rep-1", "reassigned").claim(at(4), "rep-2", how="assign")
    h.follow_up(at(5), "rep-1", "qualified")  # accepted by a followup that had not consumed the reassignment
    stage_moved(h, at(5), "contacted", "qualified", "rep-1")
    stage_moved(h, at(4), "qualified", "new", None)
    stage_moved(h, at(4), "new", "assigned", "rep-2")
    view = fold_customer(payloads(h), h.lead_id)
    assert view.stage == "assigned" and view.owner.rep_id == "rep-2"
    assert [s.stage for s in view.stage_history] == ["new", "assigned", "contacted", "new", "assigned"]
    assert len(view.follow_ups) == 2  # the contact itself is history all the same


def test_a_managers_move_for_the_owner_counts_and_a_close_counts_whoever_recorded_it():
    h = History().capture(at(0)).claim(at(1), "rep-1").follow_up(at(2), "mgr-1", "qualified")
    stage_moved(h, at(2), "assigned", "qualified", "rep-1")
    h.release(at(3), "rep-1").lost(at(4), "rep-1")
    stage_moved(h, at(4), "qualified", "lost", "rep-1")
    view = fold_customer(payloads(h), h.lead_id)
    assert [s.stage for s in view.stage_history] == ["new", "assigned", "qualified", "new", "lost"]
