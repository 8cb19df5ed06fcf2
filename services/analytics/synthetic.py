"""Synthetic lead histories in the public contract, for benchmarks, demos and tests of the read side.

``python -m services.analytics.synthetic --leads 100000`` publishes a realistic history to the
topic (captures, claims, follow-ups through the stages, releases, tasks, wins and losses), so a
replay or a dashboard can be tried on a volume without running the command-side services.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from shared.config import ServiceSettings
from shared.events import (
    Envelope,
    FollowUpLogged,
    FollowUpTaskCompleted,
    FollowUpTaskScheduled,
    LeadCaptured,
    LeadClaimed,
    LeadLost,
    LeadReleased,
    LeadWon,
    Payload,
    encode,
    kafka_headers,
    make_envelope,
)

SERVICE_OF = {
    "LeadCaptured": "intake",
    "LeadClaimed": "assignment",
    "LeadReleased": "assignment",
}


class History:
    """Builds the envelopes of one lead's history, in order, with times given explicitly."""

    def __init__(self, lead_id: str | None = None) -> None:
        self.lead_id = lead_id or str(uuid.uuid4())
        self.events: list[Envelope] = []

    def _add(self, payload: Payload, at: datetime) -> History:
        service = SERVICE_OF.get(type(payload).__name__, "followup")
        self.events.append(make_envelope(payload, service=service, time=at))
        return self

    def capture(
        self, at: datetime, *, source: str = "web_form", region: str | None = None, industry: str | None = None
    ) -> History:
        phone = "+86139" + str(uuid.UUID(self.lead_id).int)[:8]
        payload = LeadCaptured(
            lead_id=self.lead_id,
            name="客户",
            phone=phone,
            source=source,
            region=region,
            industry=industry,
            score=60,
            grade="B",
            captured_by="web",
        )
        return self._add(payload, at)

    def claim(self, at: datetime, rep: str, how: str = "claim") -> History:
        return self._add(LeadClaimed(lead_id=self.lead_id, rep_id=rep, how=how, protected_until=at + timedelta(days=30)), at)

    def release(self, at: datetime, rep: str, reason: str = "manual") -> History:
        payload = LeadReleased(lead_id=self.lead_id, rep_id=rep, reason=reason, cooldown_until=at + timedelta(days=7))
        return self._add(payload, at)

    def follow_up(self, at: datetime, rep: str, stage: str, summary: str = "通话") -> History:
        payload = FollowUpLogged(
            lead_id=self.lead_id, follow_up_id=str(uuid.uuid4()), rep_id=rep, channel="phone", summary=summary, stage=stage
        )
        return self._add(payload, at)

    def task(self, at: datetime, rep: str, due: datetime, done_at: datetime | None = None) -> History:
        task_id = str(uuid.uuid4())
        self._add(
            FollowUpTaskScheduled(lead_id=self.lead_id, task_id=task_id, rep_id=rep, kind="sop", title="回访", due_at=due), at
        )
        if done_at is not None:
            payload = FollowUpTaskCompleted(
                lead_id=self.lead_id, task_id=task_id, rep_id=rep, completed_at=done_at, on_time=done_at <= due
            )
            self._add(payload, done_at)
        return self

    def won(self, at: datetime, rep: str | None) -> History:
        return self._add(LeadWon(lead_id=self.lead_id, rep_id=rep, amount=10000.0, currency="CNY"), at)

    def lost(self, at: datetime, rep: str | None, reason: str = "price") -> History:
        return self._add(LeadLost(lead_id=self.lead_id, rep_id=rep, reason=reason), at)


SOURCES = ("web_form", "trade_show", "referral", "search_ads", "import", "api")
REGIONS = ("华东", "华北", "华南", "西南", "东北")
INDUSTRIES = ("制造", "零售", "金融", "教育", "医疗")
PATH = ("contacted", "qualified", "quoted", "negotiating")


def random_history(rng: random.Random, start: datetime, reps: int = 50) -> History:
    """One lead's plausible life: about 13 events on average."""
    at = start + timedelta(seconds=rng.randrange(0, 30 * 86400))
    history = History(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    history.capture(at, source=rng.choice(SOURCES), region=rng.choice(REGIONS), industry=rng.choice(INDUSTRIES))
    rep = f"rep-{rng.randrange(reps)}"
    at += timedelta(minutes=rng.randrange(1, 600))
    history.claim(at, rep)
    if rng.random() < 0.2:
        at += timedelta(hours=48)
        history.release(at, rep, "no_first_contact")
        rep = f"rep-{rng.randrange(reps)}"
        at += timedelta(minutes=rng.randrange(1, 600))
        history.claim(at, rep)
    for stage in PATH[: rng.randrange(1, len(PATH) + 1)]:
        at += timedelta(hours=rng.randrange(1, 72))
        history.follow_up(at, rep, stage)
        history.task(at, rep, at + timedelta(days=2), at + timedelta(hours=rng.randrange(1, 72)))
    outcome = rng.random()
    if outcome < 0.25:
        history.won(at + timedelta(days=1), rep)
    elif outcome < 0.5:
        history.lost(at + timedelta(days=1), rep)
    return history


def synthetic_events(leads: int, seed: int = 7, start: datetime | None = None) -> Iterator[Envelope]:
    rng = random.Random(seed)
    start = start or datetime(2026, 10, 1, tzinfo=UTC)
    for _ in range(leads):
        yield from random_history(rng, start).events


async def publish(bootstrap: str, topic: str, events: Iterator[Envelope]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    sent = 0
    try:
        pending = []
        for envelope in events:
            pending.append(
                await producer.send(topic, encode(envelope), key=envelope.subject.encode(), headers=kafka_headers(envelope))
            )
            sent += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description="Publish a synthetic LeadFlow history to the topic.")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--topic", help="default: LEADFLOW_TOPIC")
    args = parser.parse_args()
    settings = ServiceSettings()
    started = time.monotonic()
    sent = asyncio.run(publish(settings.kafka_bootstrap, args.topic or settings.topic, synthetic_events(args.leads, args.seed)))
    print(f"published {sent} events for {args.leads} leads in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
