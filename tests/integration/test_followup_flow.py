"""followup against the real broker and database: learns owners from the topic, keeps the task board,
marks due tasks overdue once with escalation, and publishes what it recorded."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from services.followup.app import FollowupApplication
from services.followup.config import FollowupSettings
from services.followup.domain.contact import Actor, Contact
from services.followup.domain.lead_file import LeadFile
from services.followup.due_watch import DueWatch
from services.followup.escalation import Escalation
from services.followup.policies import UpstreamPolicy
from services.followup.projections import TaskCancelled
from services.followup.publishers import to_integration_events
from services.followup.task_board import TaskBoard, TaskBoardProjector, TaskQuery
from shared.clock import LATEST, FakeClock
from shared.consumer import TopicConsumer
from shared.deadletters.tracked import TrackedDeadLetters
from shared.events import LeadCaptured, LeadClaimed, LeadReleased, encode, kafka_headers, make_envelope
from shared.eventstore import (
    ensure_schema,
    eventsourcing_env,
    tracked_batch_handler,
    tracked_partition_positions,
)
from shared.relay import OutboxRelay, build_producer
from tests.integration.kafka_reading import read_all
from tests.unit.test_followup_cadence import RULES

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
TRACE = {"correlation_id": "it", "causation_id": None}


@pytest.fixture
def settings(infra, fresh_topic):
    return FollowupSettings(database_url=infra["database_url"], kafka_bootstrap=infra["kafka"], topic=fresh_topic)


@pytest.fixture
def followup(settings, fresh_schema):
    app = FollowupApplication(eventsourcing_env(settings, fresh_schema), RULES)
    yield app
    app.close()


@pytest.fixture
def board(settings, fresh_schema):
    store = TaskBoard(settings.database_url, fresh_schema, pool_size=2)
    store.ensure_tables()
    yield store
    store.close()


async def publish(bootstrap, topic, payloads, at):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for payload in payloads:
            env = make_envelope(payload, service="test", time=at)
            await producer.send(topic, encode(env), key=env.subject.encode(), headers=kafka_headers(env))
        await producer.flush()
    finally:
        await producer.stop()


async def consume(followup, settings):
    consumer = TopicConsumer(
        service="followup-test",
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topic,
        group_id=f"g-{uuid.uuid4()}",
        load_positions=tracked_partition_positions(followup, settings.topic),
        handle_batch=tracked_batch_handler(followup, settings.topic, UpstreamPolicy(RULES)),
        worker="consumer",
        dead_letters=TrackedDeadLetters(followup, settings.topic, UpstreamPolicy(RULES)),
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await consumer.wait_until_caught_up(timeout=30)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
    return consumer.applied


async def test_claim_contact_overdue_release_end_to_end_in_process(followup, board, settings):
    lead = str(uuid.uuid4())
    claimed_at = datetime(2026, 11, 23, 9, tzinfo=UTC)
    upstream = [
        LeadCaptured(
            lead_id=lead, name="王五", phone="+8613800138000", source="web_form", score=90, grade="A", captured_by="web"
        ),
        LeadClaimed(lead_id=lead, rep_id="rep-1", how="claim", protected_until=claimed_at + 30 * 24 * H),
    ]
    await publish(settings.kafka_bootstrap, settings.topic, upstream, claimed_at)
    assert await consume(followup, settings) == 2
    projector = TaskBoardProjector(followup, board)
    projector.catch_up()

    (first,) = board.tasks(TaskQuery(rep_id="rep-1"))
    assert (first["lead_id"], first["kind"], first["status"], first["due_at"]) == (
        lead,
        "first_contact",
        "open",
        claimed_at + 24 * H,
    )

    contacted_at = claimed_at + 3 * H
    logged = followup.log_follow_up(lead, Actor("rep-1"), Contact("phone", "intro", stage="qualified"), contacted_at, TRACE)
    projector.catch_up()
    assert board.task(first["task_id"])["status"] == "done"
    (cadence,) = board.tasks(TaskQuery(rep_id="rep-1", status="open"))
    assert (cadence["kind"], cadence["due_at"]) == ("cadence", contacted_at + RULES.sop.grades["A"].every)

    clock = FakeClock(cadence["due_at"] - H)
    watch = DueWatch(followup, board, Escalation({"rep-1": "m-east"}, "sales-manager"), clock)
    assert watch.tick().overdue == 0
    clock.advance(2 * H)
    assert watch.tick().overdue == 1
    assert watch.tick().overdue == 0  # the board has not caught up yet: the LeadFile re-checks
    projector.catch_up()
    (overdue,) = board.tasks(TaskQuery(status="overdue", escalated_to="m-east"))
    assert overdue["task_id"] == cadence["task_id"]
    assert board.due_open_tasks(clock(), 100) == []

    await publish(
        settings.kafka_bootstrap,
        settings.topic,
        [LeadReleased(lead_id=lead, rep_id="rep-1", reason="no_follow_up", cooldown_until=clock() + 24 * H)],
        clock(),
    )
    assert await consume(followup, settings) == 1
    projector.catch_up()
    assert board.tasks(TaskQuery(rep_id="rep-1", status="overdue")) == []
    assert board.task(cadence["task_id"])["cancel_reason"] == "released"
    assert followup.lead_file(lead).stage == "new"

    producer = build_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(
            app=followup, service="followup", producer=producer, topic=settings.topic, mapping=to_integration_events
        )
        await relay.drain()
    finally:
        await producer.stop()
    published = [env for _, env in await read_all(settings.kafka_bootstrap, settings.topic, expect_at_least=13)]
    ours = [env for env in published if env.source == "/leadflow/followup"]
    assert [env.type for env in ours] == [
        "LeadStageChanged",
        "FollowUpTaskScheduled",
        "FollowUpLogged",
        "FollowUpTaskCompleted",
        "LeadStageChanged",
        "FollowUpTaskScheduled",
        "FollowUpTaskOverdue",
        "FollowUpTaskCancelled",
        "LeadStageChanged",
    ]
    claim_event = next(env for env in published if env.type == "LeadClaimed")
    assert ours[0].causationid == claim_event.id
    assert ours[2].payload().follow_up_id == logged.follow_up_id
    assert ours[6].payload().escalated_to == "m-east"


async def test_events_seen_again_change_nothing(followup, settings):
    lead = str(uuid.uuid4())
    at = datetime(2026, 11, 23, tzinfo=UTC)
    claim = LeadClaimed(lead_id=lead, rep_id="rep-1", how="assign", protected_until=at, assigned_by="m-1")
    await publish(settings.kafka_bootstrap, settings.topic, [claim], at)
    assert await consume(followup, settings) == 1
    recorded = followup.recorder.max_notification_id()
    assert await consume(followup, settings) == 0
    assert followup.recorder.max_notification_id() == recorded
    file = followup.lead_file(lead)
    assert (file.owner, file.grade, len(file.pending_tasks())) == ("rep-1", None, 1)


def test_the_task_board_applies_each_notification_once(followup, board):
    lead = str(uuid.uuid4())
    at = datetime(2026, 11, 23, tzinfo=UTC)
    file = LeadFile(lead_id=lead, grade="B", at=at, trace=TRACE)
    file.claim("rep-7", at, RULES, TRACE)
    followup.save(file)
    projector = TaskBoardProjector(followup, board)
    replica = TaskBoardProjector(followup, board)
    assert projector.project_once() > 0
    assert replica.project_once() == 0  # a second replica finds nothing new past the stored position
    position = board.position()
    assert board.apply([(1, [])]) == position  # a stale batch from a slower replica never moves the position back
    (task,) = board.tasks(TaskQuery(lead_id=lead))
    assert board.apply([(1, [TaskCancelled(task["task_id"], at, "released")])]) == position  # nor applies its changes
    assert board.task(task["task_id"])["status"] == "open"
    assert board.apply([(position + 5, [])]) == position + 5 == board.position()
    assert len(board.tasks(TaskQuery(lead_id=lead))) == 1


def test_a_replica_reading_behind_the_board_skips_what_another_applied(followup, board):
    at = datetime(2026, 11, 23, tzinfo=UTC)

    def claimed_lead():
        lead = str(uuid.uuid4())
        file = LeadFile(lead_id=lead, grade="B", at=at, trace=TRACE)
        file.claim("rep-8", at, RULES, TRACE)
        followup.save(file)
        return lead

    first = claimed_lead()
    replica = TaskBoardProjector(followup, board)
    replica.catch_up()
    second = claimed_lead()
    projector = TaskBoardProjector(followup, board)
    projector.catch_up()
    assert replica.position < projector.position == board.position()
    assert replica.project_once() > 0  # re-reads what the other applied; the board skips it under its lock
    assert replica.position == board.position() and replica.project_once() == 0
    assert [len(board.tasks(TaskQuery(lead_id=lead))) for lead in (first, second)] == [1, 1]


def test_concurrent_follow_ups_on_one_lead_are_both_recorded(followup):
    lead = str(uuid.uuid4())
    at = datetime(2026, 11, 23, tzinfo=UTC)
    file = LeadFile(lead_id=lead, grade="A", at=at, trace=TRACE)
    file.claim("rep-1", at, RULES, TRACE)
    followup.save(file)

    def log(n):
        return followup.log_follow_up(lead, Actor("rep-1"), Contact("phone", f"call {n}"), at + (n + 1) * H, TRACE)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(log, range(8)))
    assert len({r.follow_up_id for r in results}) == 8
    assert len(followup.lead_file(lead).follow_ups) == 8


@pytest.fixture
def shanghai_database(infra):
    """A database of its own whose sessions default to a zone east of UTC (as a Chinese deployment's may)."""
    name = f"leadflow_tz_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(infra["database_url"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Shanghai'")
    yield urlunsplit(urlsplit(infra["database_url"])._replace(path=f"/{name}"))
    with psycopg.connect(infra["database_url"], autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_a_claim_dated_at_the_end_of_the_calendar_is_planned_at_the_end_and_read_back(
    infra, fresh_topic, shanghai_database
):
    settings = FollowupSettings(database_url=shanghai_database, kafka_bootstrap=infra["kafka"], topic=fresh_topic)
    ensure_schema(settings, "followup")
    followup = FollowupApplication(eventsourcing_env(settings, "followup"), RULES)
    board = TaskBoard(settings.database_url, "followup", pool_size=2)
    board.ensure_tables()
    try:
        lead = str(uuid.uuid4())
        end = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # valid RFC 3339; it stopped followup for good once
        upstream = [
            LeadCaptured(
                lead_id=lead, name="王五", phone="+8613800138000", source="web_form", score=90, grade="A", captured_by="w"
            ),
            LeadClaimed(lead_id=lead, rep_id="rep-1", how="claim", protected_until=end),
        ]
        await publish(settings.kafka_bootstrap, settings.topic, upstream, end)
        assert await consume(followup, settings) == 2
        TaskBoardProjector(followup, board).catch_up()
        (task,) = board.tasks(TaskQuery(lead_id=lead))
        assert (task["kind"], task["due_at"], task["scheduled_at"]) == ("first_contact", LATEST, end)
        assert board.due_open_tasks(datetime(2026, 12, 1, tzinfo=UTC), 10) == []
    finally:
        board.close()
        followup.close()
