"""What assignment publishes and what its read model shows, from recorded domain events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.assignment.domain import handover
from services.assignment.domain.ownership import Ownership
from services.assignment.domain.rep import Rep
from services.assignment.domain.rules import OwnershipRules
from services.assignment.projections import RowChange, merged, row_change
from services.assignment.publishers import to_integration_events
from services.assignment.readmodel import InvalidCursor, column_arrays, decode_cursor, encode_cursor
from shared.events import LeadClaimed, LeadReleased, deterministic_event_id

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RULES = OwnershipRules()


def history() -> tuple[Ownership, list]:
    lead = Ownership(lead_id=str(uuid.uuid4()), region="上海", industry=None, grade="B", source="web_form", captured_at=NOW)
    rep = Rep(rep_id="rep-1")
    handover.claim(lead, rep, how="claim", now=NOW, rules=RULES, correlation_id="req-1")
    lead.record_follow_up(follow_up_id="f", at=NOW + timedelta(hours=1), stage="contacted", rules=RULES)
    handover.release(lead, rep, reason="manual", now=NOW + timedelta(hours=2), rules=RULES, released_by="rep-1")
    return lead, lead.collect_events() + rep.collect_events()


def test_only_changes_of_hands_are_published_with_ids_from_the_recorded_version():
    lead, events = history()
    published = [env for event in events for env in to_integration_events(event, None)]
    assert [env.type for env in published] == ["LeadClaimed", "LeadReleased"]
    claimed, released = (env.payload() for env in published)
    assert isinstance(claimed, LeadClaimed) and isinstance(released, LeadReleased)
    assert (claimed.rep_id, claimed.how, claimed.protected_until) == ("rep-1", "claim", NOW + RULES.protection_period)
    assert published[0].id == deterministic_event_id("assignment", lead.lead_id, 2)
    assert published[0].correlationid == "req-1" and published[0].time == NOW
    assert (released.reason, released.cooldown_until) == ("manual", NOW + timedelta(hours=2) + RULES.reclaim_cooldown)
    assert published[1].subject == lead.lead_id


def test_the_view_follows_owner_stage_and_deadline():
    _, events = history()
    changes = [change for event in events if (change := row_change(event)) is not None]
    assert len(changes) == 4  # rep events are not part of the view
    registered, claimed, followed, released = changes
    assert registered.insert and registered.values["region"] == "上海" and registered.values["stage"] == "new"
    assert claimed.values["owner"] == "rep-1" and claimed.values["due_reason"] == "no_first_contact"
    assert followed.values["due_at"] == NOW + timedelta(hours=1) + RULES.follow_up_sla
    assert released.values["owner"] is None and released.values["due_at"] is None and released.values["stage"] == "new"


def test_a_batch_of_changes_becomes_one_change_per_lead_with_the_same_effect():
    _, events = history()
    changes = [change for event in events if (change := row_change(event)) is not None]
    other = RowChange("other", {"grade": "A"})
    (lead, other_lead) = merged([changes[0], other, *changes[1:]])
    assert (lead.lead_id, other_lead) == (changes[0].lead_id, other)
    expected: dict = {}
    for change in changes:
        expected.update(change.values)
    assert lead.insert and lead.values == expected
    # Should the row exist already, the insert does nothing but what later changes set still applies.
    assert set(lead.then_set) == {k for change in changes[1:] for k in change.values}
    assert "region" not in lead.then_set


def test_updates_alone_merge_into_one_update():
    first, second = RowChange("x", {"grade": "B", "stage": "new"}), RowChange("x", {"grade": "A"})
    (only,) = merged([first, second])
    assert not only.insert and only.values == {"grade": "A", "stage": "new"} and only.then_set == ()


def test_a_group_of_changes_is_sent_as_one_array_per_column_lead_id_first():
    changes = [RowChange("a", {"grade": "B", "due_at": NOW}), RowChange("b", {"grade": None, "due_at": None})]
    assert column_arrays(("grade", "due_at"), changes) == [["a", "b"], ["B", None], [NOW, None]]
    naive = NOW.replace(tzinfo=None)
    assert column_arrays(("due_at",), [RowChange("a", {"due_at": naive}), RowChange("b", {"due_at": None})]) == [
        ["a", "b"],
        [naive, None],
    ]


def test_aware_and_naive_datetimes_in_one_column_are_not_sent_as_one_array():
    changes = [RowChange("a", {"due_at": NOW}), RowChange("b", {"due_at": NOW.replace(tzinfo=None)})]
    assert column_arrays(("due_at",), changes) is None


def test_cursors_round_trip():
    lead_id = str(uuid.uuid4())
    assert decode_cursor(encode_cursor(NOW, lead_id)) == (NOW, lead_id)


@pytest.mark.parametrize("junk", ["%%%", "bm90LWEtY3Vyc29y"])
def test_a_cursor_this_service_did_not_give_out_is_refused(junk):
    with pytest.raises(InvalidCursor):
        decode_cursor(junk)
