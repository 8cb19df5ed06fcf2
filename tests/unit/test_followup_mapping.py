"""What followup publishes and what its read model learns, from the recorded domain events (pure)."""

import uuid

from eventsourcing.utils import get_topic

from services.followup.domain.contact import Contact
from services.followup.domain.lead_file import LeadFile
from services.followup.projections import PROJECTED, ReminderDue, TaskAdded, TaskDone, changes_for, projected
from services.followup.publishers import to_integration_events
from shared.events import decode, encode
from tests.unit.test_followup_cadence import D
from tests.unit.test_followup_lead_file import LEAD, REP, RULES, TRACE, claimed


def recorded():
    file, c = claimed("B")
    file.log_follow_up(
        actor=REP,
        contact=Contact("phone", "pricing questions", stage="quoted", next_follow_up_at=c() + 2 * D),
        at=c(),
        rules=RULES,
        trace={"correlation_id": "req-9", "causation_id": None},
    )
    return file.collect_events()


def test_public_events_are_the_contract_ones_with_stable_ids():
    events = recorded()
    envelopes = [env for e in events for env in to_integration_events(e, None)]
    assert [env.type for env in envelopes] == [
        "LeadStageChanged",
        "FollowUpTaskScheduled",
        "FollowUpLogged",
        "FollowUpTaskCompleted",
        "LeadStageChanged",
        "FollowUpTaskScheduled",
        "FollowUpTaskScheduled",
    ]
    for env in envelopes:
        again, payload = decode(encode(env))
        assert again.subject == LEAD == payload.lead_id
        assert again.source == "/leadflow/followup"
    again = [env for e in events for env in to_integration_events(e, None)]
    assert [e.id for e in again] == [e.id for e in envelopes]
    assert len({e.id for e in envelopes}) == len(envelopes)
    logged = envelopes[2]
    assert (logged.data["stage"], logged.correlationid) == ("quoted", "req-9")
    claim_move = envelopes[0]
    assert (claim_move.data["from_stage"], claim_move.data["to_stage"], claim_move.correlationid) == ("new", "assigned", "c-1")


def test_internal_bookkeeping_is_not_published():
    events = recorded()
    silent = [type(e).__name__ for e in events if not to_integration_events(e, None)]
    assert silent == ["Opened", "Claimed", "DeadlineSet", "DeadlineSet"]


def test_the_task_board_learns_tasks_and_reminders():
    changes = [change for e in recorded() for change in changes_for(e)]
    kinds = [type(c).__name__ for c in changes]
    assert kinds == ["TaskAdded", "ReminderDue", "TaskDone", "TaskAdded", "TaskAdded", "ReminderDue"]
    first = changes[0]
    assert isinstance(first, TaskAdded) and (first.lead_id, first.rep_id, first.kind) == (LEAD, "rep-1", "first_contact")
    done = changes[2]
    assert isinstance(done, TaskDone) and done.task_id == first.task_id and done.on_time
    assert isinstance(changes[-1], ReminderDue) and changes[-1].remind_at is not None


def test_trace_of_upstream_events_is_carried():
    file, _ = claimed()
    envelope = next(env for e in file.collect_events() for env in to_integration_events(e, None))
    assert envelope.correlationid == TRACE["correlation_id"]


def test_only_the_events_that_change_a_read_model_are_projected():
    """The projector decodes only events of projected topics: every other event must change nothing."""
    classes = [c for c in vars(LeadFile).values() if isinstance(c, type) and issubclass(c, LeadFile.Event)]
    assert set(PROJECTED) < set(classes)
    for cls in classes:
        if projected(get_topic(cls)):
            continue
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", {"originator_id": uuid.UUID(LEAD), "originator_version": 1})
        assert changes_for(event) == [], cls.__name__
    recorded_changes = [e for e in recorded() if changes_for(e)]
    assert recorded_changes and all(projected(get_topic(type(e))) for e in recorded_changes)
