"""assignment's reactions to the topic and its commands, on an in-memory event store (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.assignment import repository
from services.assignment.app import AssignmentApplication
from services.assignment.domain.errors import ClaimLimitReached, LeadNotFound, LeadNotOwned, NotLeadOwner
from services.assignment.domain.routing import AssignmentRules
from services.assignment.domain.rules import OwnershipRules
from services.assignment.policies import UpstreamPolicy, handled
from shared.clock import FakeClock
from shared.consumer import Delivered
from shared.events import FollowUpLogged, LeadCaptured, LeadClaimed, LeadScored, LeadWon, Payload, make_envelope
from shared.eventstore import UnitOfWork

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULES = OwnershipRules(max_leads_per_rep=2)
ROUTING = AssignmentRules.model_validate(
    {
        "rules": [
            {"name": "east", "match": {"region": "上海"}, "reps": ["a", "b", "c"]},
            {"name": "key", "match": {"grade": "A"}, "reps": ["x", "y"], "strategy": "least_loaded"},
        ],
        "inactive_reps": ["b"],
    }
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app():
    application = AssignmentApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"}, RULES)
    yield application
    application.close()


@pytest.fixture
def consume(app, clock):
    policy = UpstreamPolicy(RULES, ROUTING, clock)

    def deliver(payload: Payload) -> None:
        envelope = make_envelope(payload, service="test", time=clock())
        unit = UnitOfWork(app)
        policy(unit, Delivered(0, 0, envelope, payload))
        app.save(*unit.aggregates)

    return deliver


def captured(region: str | None = None, grade: str = "B", reported_by: str | None = None) -> LeadCaptured:
    return LeadCaptured(
        lead_id=str(uuid.uuid4()),
        name="张三",
        phone="+8613800138000",
        source="web_form",
        region=region,
        grade=grade,
        score=50,
        captured_by="crm",
        reported_by=reported_by,
    )


def owner(app, lead: LeadCaptured) -> str | None:
    return app.ownership(lead.lead_id).owner


def test_a_captured_lead_enters_the_pool_once(app, consume):
    lead = captured()
    consume(lead)
    consume(lead)
    ownership = app.ownership(lead.lead_id)
    assert (ownership.owner, ownership.stage, ownership.version) == (None, "new", 1)


def test_a_reported_lead_is_the_reporters_at_once(app, consume):
    lead = captured(reported_by="rep-9")
    consume(lead)
    ownership = app.ownership(lead.lead_id)
    assert (ownership.owner, ownership.how) == ("rep-9", "report")


def test_a_report_over_the_limit_leaves_the_lead_in_the_pool(app, consume):
    for _ in range(2):
        consume(captured(reported_by="rep-9"))
    extra = captured(reported_by="rep-9")
    consume(extra)
    assert owner(app, extra) is None


def test_rules_assign_round_robin_skipping_inactive_reps(app, consume):
    leads = [captured(region="上海") for _ in range(4)]
    for lead in leads:
        consume(lead)
    assert [owner(app, lead) for lead in leads] == ["a", "c", "a", "c"]
    assert app.ownership(leads[0].lead_id).how == "auto"
    # a and c are now at their limit of 2: the next one stays in the pool
    fifth = captured(region="上海")
    consume(fifth)
    assert owner(app, fifth) is None


def test_rules_assign_least_loaded_and_no_match_stays_in_the_pool(app, consume, clock):
    app.claim(_pool_lead(consume), "x", clock())
    lead = captured(grade="A")
    consume(lead)
    assert owner(app, lead) == "y"
    nobody = captured(region="北京", grade="C")
    consume(nobody)
    assert owner(app, nobody) is None


def _pool_lead(consume) -> str:
    lead = captured()
    consume(lead)
    return lead.lead_id


def test_follow_ups_scores_and_wins_update_the_lead(app, consume, clock):
    lead = captured(reported_by="rep-1")
    consume(lead)
    consume(LeadScored(lead_id=lead.lead_id, score=90, grade="A"))
    clock.advance(timedelta(hours=1))
    consume(
        FollowUpLogged(
            lead_id=lead.lead_id, follow_up_id="f1", rep_id="rep-1", channel="phone", summary="called", stage="contacted"
        )
    )
    ownership = app.ownership(lead.lead_id)
    assert (ownership.grade, ownership.stage, ownership.due_reason) == ("A", "contacted", "no_follow_up")
    assert ownership.due_at == clock() + RULES.follow_up_sla
    consume(LeadWon(lead_id=lead.lead_id, rep_id="rep-1"))
    assert app.ownership(lead.lead_id).due_at is None
    assert repository.rep(UnitOfWork(app), "rep-1").leads == {lead.lead_id: "closed"}


def test_claim_release_and_who_may_release(app, consume, clock):
    lead_id = _pool_lead(consume)
    with pytest.raises(LeadNotOwned):
        app.release(lead_id, "rep-1", supervisor=False, now=clock())
    app.claim(lead_id, "rep-1", clock())
    with pytest.raises(NotLeadOwner):
        app.release(lead_id, "rep-2", supervisor=False, now=clock())
    released = app.release(lead_id, "mgr-1", supervisor=True, now=clock())
    assert (released.rep_id, released.reason, released.cooldown_until) == ("rep-1", "manual", START + RULES.reclaim_cooldown)
    with pytest.raises(LeadNotFound):
        app.claim(str(uuid.uuid4()), "rep-1", clock())


def test_recycling_releases_only_leads_whose_own_rule_says_due(app, consume, clock):
    silent, called = _pool_lead(consume), _pool_lead(consume)
    app.claim(silent, "rep-1", clock())
    app.claim(called, "rep-1", clock())
    clock.advance(timedelta(hours=1))
    consume(FollowUpLogged(lead_id=called, follow_up_id="f", rep_id="rep-1", channel="phone", summary="hi", stage="contacted"))
    clock.advance(RULES.first_contact_sla)
    released = app.recycle([silent, called], clock())
    assert [(r.lead_id, r.reason) for r in released] == [(silent, "no_first_contact")]
    assert owner_of(app, silent) is None and owner_of(app, called) == "rep-1"
    assert app.recycle([silent, called], clock()) == []


def owner_of(app, lead_id: str) -> str | None:
    return app.ownership(lead_id).owner


def test_offboarding_transfers_every_lead_and_a_retry_finds_nothing_left(app, consume, clock):
    leads = [_pool_lead(consume) for _ in range(2)]
    for lead_id in leads:
        app.claim(lead_id, "rep-1", clock())
    done = app.offboard("rep-1", "rep-2", by="mgr-1", now=clock())
    assert sorted(done.moved) == sorted(leads)
    assert {owner_of(app, lead_id) for lead_id in leads} == {"rep-2"}
    assert app.offboard("rep-1", "rep-2", by="mgr-1", now=clock()).moved == []
    with pytest.raises(Exception, match="offboarded"):
        app.claim(_pool_lead(consume), "rep-1", clock())


def test_offboarding_to_the_pool_and_refusing_a_target_without_room(app, consume, clock):
    mine, theirs = _pool_lead(consume), [_pool_lead(consume) for _ in range(2)]
    app.claim(mine, "rep-1", clock())
    for lead_id in theirs:
        app.claim(lead_id, "rep-2", clock())
    with pytest.raises(ClaimLimitReached):
        app.offboard("rep-1", "rep-2", by="mgr-1", now=clock())
    assert owner_of(app, mine) == "rep-1"
    assert app.offboard("rep-1", None, by="mgr-1", now=clock()).moved == [mine]
    assert owner_of(app, mine) is None


def test_only_events_the_policy_reacts_to_reach_a_transaction(clock):
    lead = captured()
    mine = LeadClaimed(lead_id=lead.lead_id, rep_id="rep-1", how="claim", protected_until=clock())
    batch = [Delivered(0, n, make_envelope(p, service="x", time=clock()), p) for n, p in enumerate([lead, mine])]
    assert [d.envelope.type for d in handled(batch)] == ["LeadCaptured"]
