"""Claims under contention on the real PostgreSQL, published through the real Kafka broker."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from services.assignment.app import AssignmentApplication, eventstore_env
from services.assignment.domain.errors import AssignmentError, LeadAlreadyOwned, ReclaimCooldown
from services.assignment.domain.ownership import Ownership
from services.assignment.domain.rules import OwnershipRules
from services.assignment.publishers import to_integration_events
from shared.config import ServiceSettings
from shared.relay import OutboxRelay, build_producer
from tests.integration.kafka_reading import read_all

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def app(infra, fresh_schema):
    settings = ServiceSettings(database_url=infra["database_url"], db_pool_size=20)
    application = AssignmentApplication(eventstore_env(settings, fresh_schema), OwnershipRules(max_leads_per_rep=3))
    yield application
    application.close()


def pool_lead(app: AssignmentApplication) -> str:
    lead = Ownership(lead_id=str(uuid.uuid4()), region=None, industry=None, grade="B", source="web_form", captured_at=NOW)
    app.save(lead)
    return lead.lead_id


def all_at_once(calls: list) -> list[str]:
    """Run the calls from as many threads, released together; each outcome is 'ok' or the refusal's class."""
    start = threading.Barrier(len(calls))

    def run(call) -> str:
        start.wait()
        try:
            call()
            return "ok"
        except AssignmentError as refused:
            return type(refused).__name__

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


async def test_fifty_reps_claim_one_lead_at_once_exactly_one_wins_and_one_claim_is_published(app, infra, fresh_topic):
    lead_id = pool_lead(app)
    outcomes = all_at_once([lambda rep=f"rep-{n}": app.claim(lead_id, rep, NOW) for n in range(50)])
    assert Counter(outcomes) == {"ok": 1, "LeadAlreadyOwned": 49}
    winner = f"rep-{outcomes.index('ok')}"
    assert app.ownership(lead_id).owner == winner

    producer = build_producer(infra["kafka"])
    await producer.start()
    try:
        relay = OutboxRelay(app=app, service="assignment", producer=producer, topic=fresh_topic, mapping=to_integration_events)
        await relay.drain()
    finally:
        await producer.stop()
    found = [envelope for _, envelope in await read_all(infra["kafka"], fresh_topic, expect_at_least=1)]
    assert [(e.type, e.subject, e.payload().rep_id, e.payload().how) for e in found] == [
        ("LeadClaimed", lead_id, winner, "claim")
    ]


def test_one_rep_claiming_many_leads_at_once_stays_within_the_limit(app):
    leads = [pool_lead(app) for _ in range(10)]
    outcomes = all_at_once([lambda lead_id=lead_id: app.claim(lead_id, "rep-greedy", NOW) for lead_id in leads])
    assert Counter(outcomes) == {"ok": 3, "ClaimLimitReached": 7}
    owned = [lead_id for lead_id in leads if app.ownership(lead_id).owner == "rep-greedy"]
    assert len(owned) == 3


def test_a_second_process_with_a_stale_cached_copy_cannot_claim_an_owned_lead(app, infra, fresh_schema):
    other = AssignmentApplication(eventstore_env(ServiceSettings(database_url=infra["database_url"]), fresh_schema), app.rules)
    try:
        lead_id = pool_lead(app)
        assert other.ownership(lead_id).owner is None  # the other process now caches the lead as unowned
        app.claim(lead_id, "rep-1", NOW)
        with pytest.raises(AssignmentError, match="already owned"):
            other.claim(lead_id, "rep-2", NOW)
        assert other.ownership(lead_id).owner == "rep-1"
    finally:
        other.close()


def test_a_claim_the_recorded_state_settles_is_answered_from_memory_and_a_free_lead_is_left_to_the_command(app):
    free, taken = pool_lead(app), pool_lead(app)
    app.claim(taken, "rep-1", NOW)
    assert app.settled_claim(free, "rep-2", NOW) is None  # only the command can decide: it may win
    assert app.settled_claim(str(uuid.uuid4()), "rep-2", NOW) is None  # not in memory: the command says 404
    with pytest.raises(LeadAlreadyOwned):
        app.settled_claim(taken, "rep-2", NOW)
    assert app.settled_claim(taken, "rep-1", NOW).rep_id == "rep-1"  # the owner's own claim: nothing to do
    app.release(taken, "rep-1", supervisor=False, now=NOW)
    with pytest.raises(ReclaimCooldown):
        app.settled_claim(taken, "rep-1", NOW)
    assert app.settled_claim(taken, "rep-2", NOW) is None  # released: free again for everyone else
