"""Live windowed aggregates with faust-streaming: activity per minute by event type, and hot leads
going cold (captured, not claimed within ``LEADFLOW_HOT_LEAD_WINDOW``).

These are operational signals, not records: their state lives in faust tables (Kafka changelogs,
memory store), offsets are Kafka's, and a lost minute of counts is tolerable. The read models that
must be exact (360, funnel, response time, leaderboard) are NOT here: they are PostgreSQL tables
written with their positions in one transaction (see ``tracking.py``).

    python -m services.analytics.streams worker -l info
    curl localhost:8014/activity/    curl localhost:8014/hot-leads/
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faust

from services.analytics import SERVICE
from services.analytics.config import AnalyticsSettings
from shared.events import InvalidEvent, LeadCaptured, LeadClaimed, decode, utc_rfc3339
from shared.topics import ensure_topic, topic_partitions

log = logging.getLogger(__name__)

BY_TYPE_RETENTION = timedelta(days=1)
BROKER_SESSION_TIMEOUT = 6.0  # seconds: the broker's smallest allowed (group.min.session.timeout.ms)


class Streams:
    """The faust app and its agents, tables and pages, built from settings (nothing at import time)."""

    def __init__(self, settings: AnalyticsSettings, partitions: int) -> None:
        self.settings = settings
        self.window = settings.stream_window.total_seconds()
        self.hot_after = settings.hot_lead_window.total_seconds()
        app_id = app_id_of(settings)
        app = faust.App(
            app_id,
            datadir=Path(tempfile.gettempdir()) / app_id,  # faust's own files; never in the working directory
            broker=f"kafka://{settings.kafka_bootstrap}",
            store="memory://",
            autodiscover=False,
            topic_partitions=partitions,  # tables keyed by lead id are co-partitioned with the source topic
            web_host=settings.host,
            web_port=settings.analytics_streams_port,
            consumer_auto_offset_reset="latest",  # live signals: a new deployment starts from now
            # A worker restarted after a crash gets its partitions back once the old member's session expires:
            # seconds, not faust's default minute.
            broker_session_timeout=BROKER_SESSION_TIMEOUT,
            broker_heartbeat_interval=BROKER_SESSION_TIMEOUT / 4,
        )
        self.app = app
        self.source = app.topic(settings.topic, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw")
        # Counts are keyed by event type, so events are re-keyed through a topic of the app's own
        # (faust creates it: internal) before counting: one worker owns each type's count.
        self.by_type = app.topic(
            by_type_topic(settings),
            key_type=str,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            internal=True,
            retention=BY_TYPE_RETENTION,
        )
        self.activity_counts = app.Table("activity-per-window", default=int)
        self.activity = self.activity_counts.tumbling(self.window, expires=max(3600.0, 60 * self.window))
        # lead id → {"captured_at": epoch seconds, "source": ...}
        self.unclaimed = app.Table("unclaimed-leads", default=None)
        self.announced: set[str] = set()
        self.route = app.agent(self.source, name="route-events")(self._route)
        self.count = app.agent(self.by_type, name="count-activity")(self._count)
        app.timer(interval=max(1.0, min(self.hot_after / 4, 10.0)), name="hot-leads")(self.flag_hot_leads)
        app.page("/activity/")(self._activity_page)
        app.page("/hot-leads/")(self._hot_leads_page)
        app.page("/healthz")(self._health_page)  # liveness, as every LeadFlow process answers it

    async def _route(self, records: Any) -> None:
        """Every valid event: counted by type (re-keyed by type), and tracked while its lead is unclaimed."""
        async for value in records:
            try:
                envelope, payload = decode(value)
            except InvalidEvent:
                continue
            await self.by_type.send(key=envelope.type.encode(), value=value)
            match payload:
                case LeadCaptured():
                    self.unclaimed[payload.lead_id] = {"captured_at": envelope.time.timestamp(), "source": payload.source}
                case LeadClaimed() if payload.lead_id in self.unclaimed:
                    del self.unclaimed[payload.lead_id]

    async def _count(self, records: Any) -> None:
        async for event_type, _ in records.items():
            self.activity[event_type.decode() if isinstance(event_type, bytes) else event_type] += 1

    def hot_leads(self, now: float) -> list[dict[str, Any]]:
        """Leads captured at least ``hot_after`` seconds before ``now`` and still unclaimed."""
        return [
            {
                "lead_id": lead_id,
                "source": lead["source"],
                "captured_at": lead["captured_at"],
                "waiting_s": now - lead["captured_at"],
            }
            for lead_id, lead in self.unclaimed.items()
            if lead and now - lead["captured_at"] >= self.hot_after
        ]

    async def flag_hot_leads(self) -> None:
        """Announce each hot lead once per worker process (a timer may not write tables: faust ties
        table writes to the partition of the event being processed)."""
        for lead in self.hot_leads(time.time()):
            if lead["lead_id"] not in self.announced:
                self.announced.add(lead["lead_id"])
                log.warning("hot lead going cold: captured and not claimed", extra=lead)

    def activity_per_window(self) -> dict[str, dict[str, int]]:
        """``{event type: {window start (RFC 3339): count}}`` for the windows still held."""
        out: dict[str, dict[str, int]] = {}
        for (event_type, (start, _end)), count in self.activity_counts.data.items():
            out.setdefault(event_type, {})[utc_rfc3339_from(start)] = count
        return {kind: dict(sorted(windows.items())) for kind, windows in sorted(out.items())}

    async def _health_page(self, request: Any) -> Any:
        return self.app.web.json({"status": "ok"})

    async def _activity_page(self, request: Any) -> Any:
        return self.app.web.json({"window_seconds": self.window, "activity": self.activity_per_window()})

    async def _hot_leads_page(self, request: Any) -> Any:
        return self.app.web.json({"after_seconds": self.hot_after, "leads": self.hot_leads(time.time())})


def app_id_of(settings: AnalyticsSettings) -> str:
    return f"{settings.consumer_group(SERVICE)}-streams"


def by_type_topic(settings: AnalyticsSettings) -> str:
    """The app's own topic through which events are re-keyed by type before counting."""
    return f"{app_id_of(settings)}-by-type"


def utc_rfc3339_from(epoch: float) -> str:
    return utc_rfc3339(datetime.fromtimestamp(epoch, UTC))


async def prepare(settings: AnalyticsSettings) -> int:
    """The source topic's partition count, with the app's re-keying topic created beside it: faust creates its
    internal topics as it starts, but its consumer, subscribing at the same moment, may find the new topic
    missing from the broker's metadata and never be assigned it (its counts then stay at 0 for good)."""
    partitions = len(await topic_partitions(settings.kafka_bootstrap, settings.topic))
    await ensure_topic(
        settings.kafka_bootstrap,
        by_type_topic(settings),
        partitions=partitions,
        like=settings.topic,
        configs={"retention.ms": str(int(BY_TYPE_RETENTION.total_seconds() * 1000))},
    )
    return partitions


def main() -> None:
    settings = AnalyticsSettings()
    streams = Streams(settings, asyncio.run(prepare(settings)))
    streams.app.main()


if __name__ == "__main__":
    main()
