"""intake against the real PostgreSQL and Kafka: duplicate races, batches, soft matches, re-runnable imports."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from eventsourcing.utils import get_topic

from services.intake.app import Captured, Duplicate, IntakeApplication
from services.intake.capture import parse_lead
from services.intake.coalescer import CaptureCoalescer
from services.intake.config import DEFAULT_SCORING_RULES, load_scoring_rules
from services.intake.csv_rows import CsvLeadReader
from services.intake.domain import Lead
from services.intake.imports import import_csv
from services.intake.publishers import to_integration_events
from services.intake.store import IntakeRecorder
from shared.clock import system_clock
from shared.config import ServiceSettings
from shared.eventstore import eventsourcing_env
from shared.relay import OutboxRelay, build_producer
from tests.integration.kafka_reading import read_all

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def app(infra, fresh_schema):
    settings = ServiceSettings(database_url=infra["database_url"])
    env = eventsourcing_env(settings, fresh_schema, PROCESS_RECORDER_TOPIC=get_topic(IntakeRecorder))
    application = IntakeApplication(env, load_scoring_rules(DEFAULT_SCORING_RULES))
    yield application
    application.close()


def new(phone: str, **fields):
    data = {"name": "李四", "phone": phone, "source": "web_form", **fields}
    return parse_lead(data, default_region="CN", captured_by=fields.get("by", "crm"), role="integration")


def recorded(app: IntakeApplication) -> Counter:
    notifications = app.recorder.select_notifications(1, 1_000_000)
    return Counter(type(app.mapper.to_domain_event(n)).__qualname__ for n in notifications)


async def publish_all(app: IntakeApplication, infra, topic: str) -> None:
    producer = build_producer(infra["kafka"])
    await producer.start()
    try:
        relay = OutboxRelay(app=app, service="intake", producer=producer, topic=topic, mapping=to_integration_events)
        await relay.drain()
    finally:
        await producer.stop()


async def test_twenty_concurrent_captures_of_one_phone_make_exactly_one_lead(app, infra, fresh_topic):
    start = threading.Barrier(20)

    def capture(n: int):
        start.wait()
        return app.capture(new("138 0013 8000", source=f"channel-{n}"), now=NOW)

    with ThreadPoolExecutor(20) as pool:
        outcomes = await asyncio.to_thread(lambda: list(pool.map(capture, range(20))))

    created = [o for o in outcomes if isinstance(o, Captured)]
    duplicates = [o for o in outcomes if isinstance(o, Duplicate)]
    assert len(created) == 1 and len(duplicates) == 19
    assert {o.lead_id for o in outcomes} == {created[0].lead_id}
    assert recorded(app) == {"Lead.Captured": 1, "Lead.Recaptured": 19}  # every losing attempt is kept, once

    await publish_all(app, infra, fresh_topic)
    found = await read_all(infra["kafka"], fresh_topic, expect_at_least=20)
    types = Counter(envelope.type for _, envelope in found)
    assert types == {"LeadCaptured": 1, "LeadRecaptured": 19}
    lead: Lead = app.get_lead(created[0].lead_id)
    assert len(lead.recaptures) == 19 and len({r["source"] for r in lead.recaptures} | {lead.source}) == 20


async def test_concurrent_http_captures_grouped_in_one_transaction_keep_one_lead_per_phone(app):
    coalescer = CaptureCoalescer(app, system_clock)
    coalescer.start()
    try:
        phones = ["13700000001"] * 10 + [f"1370000{n:04d}" for n in range(2, 32)]
        outcomes = await asyncio.gather(*(coalescer.capture(new(p), f"request-{n}") for n, p in enumerate(phones)))
    finally:
        await asyncio.to_thread(coalescer.stop)
    assert sum(isinstance(o, Captured) for o in outcomes) == 31
    assert sum(isinstance(o, Duplicate) for o in outcomes) == 9
    assert recorded(app) == {"Lead.Captured": 31, "Lead.Recaptured": 9}
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 100)]
    assert {e.correlation_id for e in events} == {f"request-{n}" for n in range(40)}  # each request keeps its own


def test_overlapping_batches_racing_each_other_create_each_phone_once(app):
    phones = [f"1390000{n:04d}" for n in range(150)]
    first, second = [new(p) for p in phones[:100]], [new(p, source="trade_show") for p in phones[50:]]
    start = threading.Barrier(2)

    def capture(batch):
        start.wait()
        return app.capture_many(batch, now=NOW)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(capture, [first, second]))
    created = Counter(o.lead_id for outcomes in results for o in outcomes if isinstance(o, Captured))
    assert len(created) == 150 and set(created.values()) == {1}
    assert recorded(app) == {"Lead.Captured": 150, "Lead.Recaptured": 50}


def test_a_batch_handles_duplicates_within_itself_and_against_the_store(app):
    app.capture(new("13800000001"), now=NOW)
    outcomes = app.capture_many(
        [new("13800000002"), new("+86 138 0000 0002", source="referral"), new("13800000001", source="api")], now=NOW
    )
    assert [type(o).__name__ for o in outcomes] == ["Captured", "Duplicate", "Duplicate"]
    assert outcomes[0].lead_id == outcomes[1].lead_id
    assert recorded(app) == {"Lead.Captured": 2, "Lead.Recaptured": 2}


def test_soft_matches_do_not_reject_and_are_visible_from_both_leads(app):
    first = app.capture(new("13800000011", email="li@example.com", company="示例科技"), now=NOW)
    by_email = app.capture(new("13800000012", email="LI@example.com"), now=NOW)
    by_company = app.capture(new("13800000013", name="李 四", company="示例 科技"), now=NOW)
    stranger = app.capture(new("13800000014", name="王五", company="示例科技"), now=NOW)
    assert isinstance(by_email, Captured) and by_email.possible_duplicates == [str(first.lead_id)]
    assert by_company.possible_duplicates == [str(first.lead_id)] and stranger.possible_duplicates == []
    related = {d["lead_id"]: d["matched_on"] for d in app.possible_duplicates_of(app.get_lead(first.lead_id))}
    assert related == {str(by_email.lead_id): ["email"], str(by_company.lead_id): ["company+name"]}


def csv_file(rows: int) -> bytes:
    body = "".join(f"客户{n},139{n:08d},公司{n},展会\n" if n % 10 else f"坏行{n},123,,\n" for n in range(rows))
    return ("\ufeff姓名,手机,公司,来源\n" + body).encode()


def run_import(app, data: bytes, chunk_rows: int = 50):
    reader = CsvLeadReader([data[i : i + 1000] for i in range(0, len(data), 1000)])
    return import_csv(
        app, reader, default_region="CN", captured_by="ops", role="manager", clock=system_clock, chunk_rows=chunk_rows
    )


def test_an_import_interrupted_midway_is_completed_by_running_it_again(app, monkeypatch):
    data = csv_file(500)  # 450 valid rows, 50 broken
    original, calls = app.capture_many, []

    def crash_on_the_fourth_chunk(leads, **kwargs):
        calls.append(len(leads))
        if len(calls) == 4:
            raise ConnectionError("power cut")
        return original(leads, **kwargs)

    monkeypatch.setattr(app, "capture_many", crash_on_the_fourth_chunk)
    with pytest.raises(ConnectionError):
        run_import(app, data)
    monkeypatch.setattr(app, "capture_many", original)
    assert recorded(app) == {"Lead.Captured": 150}  # three acknowledged chunks, nothing of the fourth

    rerun = run_import(app, data)
    assert (rerun.created, rerun.duplicates, len(rerun.invalid)) == (300, 150, 50)
    assert rerun.invalid[0] == {"row": 2, "errors": [{"field": "phone", "message": "not a valid phone number: '123'"}]}
    again = run_import(app, data, chunk_rows=1000)
    assert (again.created, again.duplicates) == (0, 450)
    assert recorded(app) == {"Lead.Captured": 450}  # re-importing rows records no recaptures
