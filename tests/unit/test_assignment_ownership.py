"""Every ownership rule, on the aggregates alone, with a fake clock: no I/O, no sleeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.assignment.domain import handover
from services.assignment.domain.errors import (
    ClaimLimitReached,
    LeadAlreadyOwned,
    LeadClosed,
    LeadNotOwned,
    ReclaimCooldown,
    RepOffboarded,
)
from services.assignment.domain.ownership import Ownership
from services.assignment.domain.rep import Rep
from services.assignment.domain.rules import OwnershipRules
from shared.clock import FakeClock

RULES = OwnershipRules(
    protection_period=timedelta(days=30),
    protection_extension=timedelta(days=30),
    first_contact_sla=timedelta(hours=48),
    follow_up_sla=timedelta(days=7),
    reclaim_cooldown=timedelta(days=7),
    max_leads_per_rep=3,
)
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def new_lead(clock: FakeClock) -> Ownership:
    return Ownership(
        lead_id=str(uuid.uuid4()), region="上海", industry="manufacturing", grade="A", source="web_form", captured_at=clock()
    )


def claimed(clock: FakeClock, rep: Rep, how: str = "claim") -> Ownership:
    lead = new_lead(clock)
    assert handover.claim(lead, rep, how=how, now=clock(), rules=RULES)
    return lead


def event_names(*aggregates) -> list[str]:
    return [type(e).__name__ for a in aggregates for e in a.collect_events()]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def test_a_claim_protects_the_lead_and_sets_the_first_contact_deadline(clock):
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    assert (lead.owner, lead.how, lead.stage) == ("rep-1", "claim", "assigned")
    assert lead.protected_until == START + timedelta(days=30)
    assert (lead.due_at, lead.due_reason) == (START + timedelta(hours=48), "no_first_contact")
    assert rep.leads == {lead.lead_id: "open"}


def test_a_lead_owned_by_someone_else_is_refused_and_nothing_is_recorded(clock):
    lead = claimed(clock, Rep(rep_id="rep-1"))
    lead.collect_events()
    other = Rep(rep_id="rep-2")
    other.collect_events()
    with pytest.raises(LeadAlreadyOwned):
        handover.claim(lead, other, how="claim", now=clock(), rules=RULES)
    assert event_names(lead, other) == []
    assert lead.owner == "rep-1"


def test_claiming_your_own_lead_again_changes_nothing(clock):
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    lead.collect_events()
    rep.collect_events()
    assert handover.claim(lead, rep, how="claim", now=clock(), rules=RULES) is False
    assert event_names(lead, rep) == []


def test_the_open_lead_limit_refuses_the_next_claim_but_closed_leads_do_not_count(clock):
    rep = Rep(rep_id="rep-1")
    leads = [claimed(clock, rep) for _ in range(3)]
    with pytest.raises(ClaimLimitReached) as refused:
        claimed(clock, rep)
    assert refused.value.limit == 3
    leads[0].record_stage(stage="won", rules=RULES, rep_id="rep-1", at=clock())
    handover.record_progress(leads[0], rep)
    assert rep.open_leads == 2
    claimed(clock, rep)
    assert rep.open_leads == 3


def test_a_released_rep_cannot_reclaim_during_the_cooldown_but_others_can(clock):
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    handover.release(lead, rep, reason="manual", now=clock(), rules=RULES, released_by="rep-1")
    clock.advance(timedelta(days=6, hours=23))
    with pytest.raises(ReclaimCooldown) as refused:
        handover.claim(lead, rep, how="claim", now=clock(), rules=RULES)
    assert refused.value.until == START + timedelta(days=7)
    assert handover.claim(lead, Rep(rep_id="rep-2"), how="claim", now=clock(), rules=RULES)


def test_the_cooldown_ends(clock):
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    handover.release(lead, rep, reason="manual", now=clock(), rules=RULES)
    clock.advance(timedelta(days=7))
    assert handover.claim(lead, rep, how="claim", now=clock(), rules=RULES)


def test_no_first_contact_within_the_sla_is_due(clock):
    lead = claimed(clock, Rep(rep_id="rep-1"))
    clock.advance(timedelta(hours=47, minutes=59))
    assert lead.due_release(clock()) is None
    clock.advance(timedelta(minutes=1))
    assert lead.due_release(clock()) == "no_first_contact"


def test_a_follow_up_moves_the_deadline_to_the_follow_up_sla(clock):
    lead = claimed(clock, Rep(rep_id="rep-1"))
    clock.advance(timedelta(hours=20))
    lead.record_follow_up(follow_up_id="f1", at=clock(), stage="contacted", rules=RULES, rep_id="rep-1")
    assert (lead.due_at, lead.due_reason) == (clock() + timedelta(days=7), "no_follow_up")
    clock.advance(timedelta(days=6))
    lead.record_follow_up(follow_up_id="f2", at=clock(), stage="qualified", rules=RULES, rep_id="rep-1")
    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert lead.due_release(clock()) is None
    clock.advance(timedelta(seconds=1))
    assert lead.due_release(clock()) == "no_follow_up"


def test_a_follow_up_dated_at_the_end_of_the_calendar_moves_the_deadline_to_the_end_not_an_overflow(clock):
    lead = claimed(clock, Rep(rep_id="rep-1"))
    end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    lead.record_follow_up(follow_up_id="f1", at=end, stage="quoted", rules=RULES)
    assert lead.last_contact_at == end
    assert lead.due_at == lead.protected_until  # the protection (extended once at quoted) now comes first
    lead.record_follow_up(follow_up_id="f2", at=end, stage="negotiating", rules=RULES)


def test_a_follow_up_from_before_the_claim_is_not_a_first_contact(clock):
    lead = new_lead(clock)
    clock.advance(timedelta(hours=1))
    handover.claim(lead, Rep(rep_id="rep-1"), how="claim", now=clock(), rules=RULES)
    lead.record_follow_up(follow_up_id="old", at=clock() - timedelta(minutes=30), stage="new", rules=RULES)
    assert lead.due_reason == "no_first_contact"
    clock.advance(timedelta(hours=48))
    assert lead.due_release(clock()) == "no_first_contact"


def test_protection_ends_without_a_win_even_with_regular_follow_ups(clock):
    lead = claimed(clock, Rep(rep_id="rep-1"))
    for _ in range(5):
        clock.advance(timedelta(days=6))
        lead.record_follow_up(follow_up_id=str(uuid.uuid4()), at=clock(), stage="contacted", rules=RULES, rep_id="rep-1")
    assert lead.due_reason == "protection_expired"
    assert lead.due_release(START + timedelta(days=30) - timedelta(seconds=1)) is None
    assert lead.due_release(START + timedelta(days=30)) == "protection_expired"


def test_reaching_quoted_extends_protection_once(clock):
    lead = claimed(clock, Rep(rep_id="rep-1"))
    lead.record_stage(stage="quoted", rules=RULES, rep_id="rep-1", at=clock())
    assert lead.protected_until == START + timedelta(days=60)
    lead.record_stage(stage="negotiating", rules=RULES, rep_id="rep-1", at=clock())
    lead.record_follow_up(follow_up_id="f", at=clock(), stage="negotiating", rules=RULES, rep_id="rep-1")
    assert lead.protected_until == START + timedelta(days=60)


def test_a_new_owner_gets_a_fresh_protection_and_extension(clock):
    first = Rep(rep_id="rep-1")
    lead = claimed(clock, first)
    lead.record_stage(stage="quoted", rules=RULES, rep_id="rep-1", at=clock())
    handover.release(lead, first, reason="manual", now=clock(), rules=RULES)
    assert lead.stage == "new"
    handover.claim(lead, Rep(rep_id="rep-2"), how="claim", now=clock(), rules=RULES)
    assert lead.protected_until == START + timedelta(days=30)
    lead.record_stage(stage="quoted", rules=RULES, rep_id="rep-2", at=clock())
    assert lead.protected_until == START + timedelta(days=60)


@pytest.mark.parametrize("final", ["won", "lost"])
def test_won_and_lost_leads_are_never_due_and_cannot_be_claimed_or_released_by_hand(clock, final):
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    lead.record_stage(stage=final, rules=RULES, rep_id="rep-1", at=clock())
    clock.advance(timedelta(days=365))
    assert lead.due_release(clock()) is None and lead.due_at is None
    with pytest.raises(LeadClosed):
        lead.release(reason="manual", now=clock(), rules=RULES)
    with pytest.raises(LeadClosed):
        handover.claim(lead, Rep(rep_id="rep-2"), how="claim", now=clock(), rules=RULES)
    lead.record_stage(stage="negotiating", rules=RULES, rep_id="rep-1", at=clock())
    assert lead.stage == final


def test_stages_only_move_forward(clock):
    lead = claimed(clock, Rep(rep_id="rep-1"))
    lead.record_stage(stage="qualified", rules=RULES, rep_id="rep-1", at=clock())
    lead.collect_events()
    lead.record_stage(stage="contacted", rules=RULES, rep_id="rep-1", at=clock())
    assert lead.stage == "qualified"
    assert event_names(lead) == []


def test_releasing_a_lead_in_the_pool_is_refused(clock):
    with pytest.raises(LeadNotOwned):
        new_lead(clock).release(reason="manual", now=clock(), rules=RULES)


def test_reassigning_releases_the_owner_then_claims_for_the_new_rep(clock):
    old, new = Rep(rep_id="rep-1"), Rep(rep_id="rep-2")
    lead = claimed(clock, old)
    lead.collect_events()
    assert handover.assign(lead, old, new, now=clock(), rules=RULES, assigned_by="mgr-1")
    assert event_names(lead) == ["Released", "Claimed"]
    assert (lead.owner, lead.how) == ("rep-2", "assign")
    assert old.leads == {} and lead.lead_id in new.leads
    assert lead.cooldowns["rep-1"] == START + timedelta(days=7)


def test_an_assignment_the_target_has_no_room_for_changes_nothing(clock):
    old, full = Rep(rep_id="rep-1"), Rep(rep_id="rep-2")
    lead = claimed(clock, old)
    for _ in range(3):
        claimed(clock, full)
    for aggregate in (lead, old, full):
        aggregate.collect_events()
    with pytest.raises(ClaimLimitReached):
        handover.assign(lead, old, full, now=clock(), rules=RULES, assigned_by="mgr-1")
    assert event_names(lead, old, full) == []
    assert lead.owner == "rep-1"


def test_an_offboarded_rep_takes_no_lead_and_offboarding_twice_records_once(clock):
    rep = Rep(rep_id="rep-1")
    rep.offboard(at=clock(), offboarded_by="mgr-1")
    rep.offboard(at=clock(), offboarded_by="mgr-1")
    assert event_names(rep) == ["Registered", "Offboarded"]
    with pytest.raises(RepOffboarded):
        claimed(clock, rep, how="assign")


def test_offboarding_is_refused_before_anything_moves_when_the_target_lacks_room(clock):
    leaving, target = Rep(rep_id="rep-1"), Rep(rep_id="rep-2")
    for _ in range(2):
        claimed(clock, leaving)
        claimed(clock, target)
    with pytest.raises(ClaimLimitReached):
        handover.check_offboarding(leaving, target, RULES)
    handover.check_offboarding(leaving, None, RULES)
    target.offboard(at=clock(), offboarded_by="mgr")
    with pytest.raises(RepOffboarded):
        handover.check_offboarding(leaving, target, RULES)


# --- who owns the stage: assignment; followup's moves count for the ownership they were made in ----------


def test_a_move_by_a_former_owner_after_the_release_leaves_the_pool_lead_new(clock):
    """The race: followup accepted rep-1's follow-up just before it consumed the release."""
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    handover.release(lead, rep, reason="manual", now=clock(), rules=RULES)
    clock.advance(timedelta(milliseconds=50))
    lead.record_follow_up(follow_up_id="late", at=clock(), stage="qualified", rules=RULES, rep_id="rep-1")
    lead.record_stage(stage="qualified", rules=RULES, rep_id="rep-1", at=clock())
    assert (lead.owner, lead.stage) == (None, "new")


def test_a_move_from_before_the_release_consumed_after_it_leaves_the_lead_new(clock):
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    contacted_at = clock() + timedelta(minutes=5)
    handover.release(lead, rep, reason="manual", now=clock() + timedelta(minutes=6), rules=RULES)
    lead.record_stage(stage="contacted", rules=RULES, rep_id="rep-1", at=contacted_at)
    assert lead.stage == "new"


def test_a_move_by_the_former_owner_after_a_reassignment_does_not_move_the_new_owners_lead(clock):
    first, second = Rep(rep_id="rep-1"), Rep(rep_id="rep-2")
    lead = claimed(clock, first)
    handover.assign(lead, first, second, now=clock(), rules=RULES, assigned_by="mgr-1")
    clock.advance(timedelta(seconds=1))  # after the reassignment, by a followup that had not consumed it yet
    lead.record_stage(stage="qualified", rules=RULES, rep_id="rep-1", at=clock())
    assert (lead.owner, lead.stage) == ("rep-2", "assigned")
    lead.record_stage(stage="qualified", rules=RULES, rep_id="rep-2", at=clock())
    assert lead.stage == "qualified"


def test_followups_echo_of_a_claim_after_the_release_does_not_move_the_pool_lead(clock):
    """followup publishes new → assigned when it consumes a claim; it may land after assignment's release."""
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    claimed_at = clock()
    clock.advance(timedelta(seconds=1))
    handover.release(lead, rep, reason="manual", now=clock(), rules=RULES)
    lead.record_stage(stage="assigned", rules=RULES, rep_id="rep-1", at=claimed_at)
    assert lead.stage == "new"


@pytest.mark.parametrize("final", ["won", "lost"])
def test_won_and_lost_count_whoever_recorded_them_as_followup_never_takes_them_back(clock, final):
    rep = Rep(rep_id="rep-1")
    lead = claimed(clock, rep)
    handover.release(lead, rep, reason="manual", now=clock(), rules=RULES)
    lead.record_stage(stage=final, rules=RULES, rep_id="rep-1", at=clock() + timedelta(seconds=1))
    assert (lead.owner, lead.stage, lead.closed) == (None, final, True)
