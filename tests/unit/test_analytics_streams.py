"""The faust agents at agent level (``agent.test_context()``, no broker): routing, counting, hot leads.

The re-keying send to the by-type topic is replaced by a recorder here; the worker against the
real broker is tested in tests/integration/test_analytics_streams.py.
"""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from services.analytics.config import AnalyticsSettings
from services.analytics.streams import Streams
from services.analytics.synthetic import History
from shared.events import encode

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
async def streams():
    built = Streams(AnalyticsSettings(hot_lead_window="15m", stream_window="60s"), partitions=3)
    built.app.finalize()
    built.app.flow_control.resume()
    sent: list[dict] = []

    async def record(**message) -> None:
        sent.append(message)

    built.by_type.send = record
    built.sent = sent
    return built


async def route(streams: Streams, *histories: History, raw: list[bytes] = ()) -> None:
    async with streams.route.test_context() as agent:
        for value in raw:
            await agent.put(value, key=b"junk")
        for envelope in (e for h in histories for e in h.events):
            await agent.put(encode(envelope), key=envelope.subject.encode())


async def test_leads_captured_and_not_claimed_within_the_window_are_hot(streams):
    cold = History().capture(NOW - timedelta(minutes=20), source="trade_show")
    claimed = History().capture(NOW - timedelta(minutes=20)).claim(NOW - timedelta(minutes=1), "rep-1")
    fresh = History().capture(NOW - timedelta(minutes=5))
    await route(streams, cold, claimed, fresh, raw=[b"not an event"])
    hot = streams.hot_leads(NOW.timestamp())
    assert [(lead["lead_id"], lead["source"], lead["waiting_s"]) for lead in hot] == [(cold.lead_id, "trade_show", 1200.0)]
    assert [m["key"] for m in streams.sent] == [b"LeadCaptured", b"LeadCaptured", b"LeadClaimed", b"LeadCaptured"]


async def test_a_hot_lead_is_announced_once(streams, caplog):
    cold = History().capture(datetime.now(UTC) - timedelta(hours=1))
    await route(streams, cold)
    with caplog.at_level(logging.WARNING, logger="services.analytics.streams"):
        await streams.flag_hot_leads()
        await streams.flag_hot_leads()
    assert [r.lead_id for r in caplog.records] == [cold.lead_id]


async def test_activity_is_counted_per_window_by_event_type(streams):
    async with streams.count.test_context() as agent:
        for event_type in (b"LeadCaptured", b"LeadClaimed", b"LeadCaptured"):
            await agent.put(b"{}", key=event_type)
    activity = streams.activity_per_window()
    assert {kind: sum(windows.values()) for kind, windows in activity.items()} == {"LeadCaptured": 2, "LeadClaimed": 1}
    (window,) = activity["LeadCaptured"]
    assert window.endswith(":00Z")
