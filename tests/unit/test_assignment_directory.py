"""assignment learns reps from the people directory's events: a deactivated rep is given no lead (by a claim,
an assignment, an offboarding or the rules), and with ``directory_required`` nor is a rep it never announced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.assignment.app import AssignmentApplication
from services.assignment.domain.errors import RepInactive, RepUnknown
from services.assignment.domain.routing import AssignmentRules
from services.assignment.domain.rules import OwnershipRules
from services.assignment.policies import UpstreamPolicy, handled
from shared.clock import FakeClock
from shared.consumer import Delivered
from shared.events import LeadCaptured, Payload, RepDeactivated, RepJoined, RepReactivated, make_envelope
from shared.eventstore import UnitOfWork

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ROUTING = AssignmentRules.model_validate({"rules": [{"name": "east", "match": {"region": "上海"}, "reps": ["a", "b"]}]})


def application(directory_required: bool) -> AssignmentApplication:
    return AssignmentApplication(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"}, OwnershipRules(directory_required=directory_required)
    )


@pytest.fixture(params=[False, True], ids=["directory-optional", "directory-required"])
def app(request):
    made = application(request.param)
    yield made
    made.close()


@pytest.fixture
def consume(app):
    policy = UpstreamPolicy(app.rules, ROUTING, FakeClock(START))

    def deliver(payload: Payload) -> None:
        envelope = make_envelope(payload, service="test", time=START)
        delivered = Delivered(0, 0, envelope, payload)
        assert handled([delivered]) == [delivered]
        assert policy.aggregate_ids(delivered)
        unit = UnitOfWork(app)
        policy(unit, delivered)
        app.save(*unit.aggregates)

    return deliver


def lead(consume, region: str | None = None) -> str:
    captured = LeadCaptured(
        lead_id=str(uuid.uuid4()),
        name="张三",
        phone="+8613800138000",
        source="web_form",
        region=region,
        grade="B",
        score=50,
        captured_by="crm",
    )
    consume(captured)
    return captured.lead_id


def joined(rep_id: str) -> RepJoined:
    return RepJoined(rep_id=rep_id, display_name=rep_id, role="rep")


def test_a_deactivated_rep_is_assigned_nothing_and_claims_nothing_until_reactivated(app, consume):
    consume(joined("rep-1"))
    consume(RepDeactivated(rep_id="rep-1"))
    first = lead(consume)
    with pytest.raises(RepInactive):
        app.assign(first, "rep-1", by="mgr", now=START)
    with pytest.raises(RepInactive):
        app.claim(first, "rep-1", START)
    assert app.ownership(first).owner is None
    consume(RepReactivated(rep_id="rep-1"))
    assert app.assign(first, "rep-1", by="mgr", now=START).rep_id == "rep-1"


def test_offboarding_to_a_deactivated_rep_is_refused_before_anything_moves(app, consume):
    consume(joined("leaving"))
    consume(joined("inactive"))
    consume(RepDeactivated(rep_id="inactive"))
    owned = lead(consume)
    app.claim(owned, "leaving", START)
    with pytest.raises(RepInactive):
        app.offboard("leaving", "inactive", by="mgr", now=START)
    assert app.ownership(owned).owner == "leaving"


def test_the_rules_skip_a_deactivated_rep(app, consume):
    consume(joined("a"))
    consume(joined("b"))
    consume(RepDeactivated(rep_id="a"))
    assert {app.ownership(lead(consume, "上海")).owner for _ in range(3)} == {"b"}


def test_a_rep_the_directory_never_announced_is_refused_only_when_the_directory_is_required(app, consume):
    unknown = lead(consume)
    if app.rules.directory_required:
        with pytest.raises(RepUnknown):
            app.assign(unknown, "stranger", by="mgr", now=START)
        consume(joined("stranger"))
    assert app.assign(unknown, "stranger", by="mgr", now=START).rep_id == "stranger"
