"""What followup learns from upstream events (the consumer's policy), on an in-memory event store."""

from datetime import UTC, datetime

import pytest

from services.followup.app import FollowupApplication
from services.followup.policies import UpstreamPolicy
from shared.consumer import Delivered
from shared.events import LeadCaptured, LeadClaimed, LeadReleased, make_envelope
from shared.eventstore import UnitOfWork
from tests.unit.test_followup_cadence import RULES
from tests.unit.test_followup_lead_file import LEAD

AT = datetime(2026, 11, 23, 9, tzinfo=UTC)


@pytest.fixture
def app():
    app = FollowupApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"}, RULES)
    yield app
    app.close()


def delivered(payload, service="intake"):
    return Delivered(0, 0, make_envelope(payload, service=service, time=AT), payload)


def captured(lead_id=LEAD, grade="A"):
    return LeadCaptured(
        lead_id=lead_id, name="王五", phone="+8613800138000", source="web_form", score=90, grade=grade, captured_by="web"
    )


def apply(app, *items):
    unit = UnitOfWork(app)
    policy = UpstreamPolicy(RULES)
    # (the batch's existence query, UnitOfWork.preload, needs PostgreSQL: each file is looked up on its own here)
    for item in items:
        policy(unit, item)
    return list(unit.aggregates)


def test_a_capture_opens_the_lead_file_with_its_grade_and_trace(app):
    item = delivered(captured())
    assert [str(i) for i in UpstreamPolicy.aggregate_ids(item)] == [LEAD]
    (file,) = apply(app, item)
    assert (file.lead_id, file.grade, file.opened_at, file.owner) == (LEAD, "A", AT, None)
    (opened,) = file.collect_events()
    assert opened.trace == {"correlation_id": item.envelope.id, "causation_id": item.envelope.id}


def test_a_lead_id_in_another_spelling_opens_the_file_under_its_canonical_id(app):
    (file,) = apply(app, delivered(captured(LEAD.upper())))
    assert file.lead_id == LEAD and str(file.id) == LEAD
    app.save(file)
    assert app.lead_file(LEAD).lead_id == LEAD  # and so does its replay


def test_claim_then_release_in_one_batch_touch_one_file(app):
    claim = LeadClaimed(lead_id=LEAD, rep_id="rep-1", how="claim", protected_until=AT)
    release = LeadReleased(lead_id=LEAD, rep_id="rep-1", reason="manual", cooldown_until=AT)
    (file,) = apply(app, delivered(captured()), delivered(claim, "assignment"), delivered(release, "assignment"))
    assert (file.owner, file.stage) == (None, "new")
    assert [type(e).__name__ for e in file.collect_events()][:3] == ["Opened", "Claimed", "StageChanged"]


def test_a_release_of_an_unknown_lead_and_the_services_own_events_change_nothing(app):
    release = LeadReleased(lead_id=LEAD, rep_id="rep-1", reason="manual", cooldown_until=AT)
    assert apply(app, delivered(release, "assignment"), delivered(captured(), "followup")) == []


def test_an_event_whose_lead_id_is_not_a_uuid_is_ignored(app, caplog):
    item = delivered(captured("not-a-uuid"))
    assert UpstreamPolicy.aggregate_ids(item) == []
    assert apply(app, item) == []
    assert "not a UUID" in caplog.text
