"""The worker that tells people: plans each new notice per channel (now, after quiet hours, or in the digest),
puts it in the console feed, and sends what is due on e-mail and the robots, trying again with back-off."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from services.notify import SERVICE
from services.notify.channels import Channel, SendFailed, Unreachable
from services.notify.domain.notices import Person
from services.notify.domain.preferences import HoldUntil, Preferences, SendNow, ToDigest, plan
from services.notify.messages import Message, Messages
from services.notify.store.people import FeedItem, PendingNotice, People, PlannedSend, Send
from shared.clock import Clock
from shared.metrics import NOTIFICATION_FAILURES, NOTIFICATION_LATENCY, NOTIFICATIONS_SENT
from shared.retry import RetryPolicy
from shared.supervisor import WorkerHealth

log = logging.getLogger(__name__)

PLAN_BATCH = 200
SEND_BATCH = 100
# A send in hand is leased this long: a worker that dies mid-send leaves it to be sent again afterwards.
SEND_LEASE = timedelta(minutes=2)


class Messenger:
    def __init__(
        self,
        people: People,
        messages: Messages,
        channels: Mapping[str, Channel],
        *,
        clock: Clock,
        backoff: RetryPolicy,
        attempts: int,
        poll_interval: float,
        wake: asyncio.Event,
        health: WorkerHealth | None = None,
    ) -> None:
        self.people = people
        self.messages = messages
        self.channels = channels
        self.clock = clock
        self.backoff = backoff
        self.attempts = attempts
        self.poll_interval = poll_interval
        self.wake = wake
        self.health = health
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self.wake.clear()
            busy = await self.step()
            if self.health is not None:
                self.health.progressed()
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_interval)

    async def step(self) -> int:
        """Plan what is new, send what is due; returns how many notices and sends it handled."""
        planned = await asyncio.to_thread(self.people.plan_new, self.clock(), PLAN_BATCH, self.plan)
        sends = await asyncio.to_thread(self.people.claim_due, self.clock(), SEND_BATCH, SEND_LEASE)
        if sends:
            results = await asyncio.gather(*(self.send(s) for s in sends))
            await asyncio.to_thread(self.people.finished, results, self.clock())
        return planned + len(sends)

    def _message(self, notice: PendingNotice, person: Person | None, prefs: Preferences, now: datetime) -> Message:
        reader = person.display_name if person else notice.recipient
        return self.messages.render(
            notice.kind, notice.params, reader=reader, language=prefs.language, timezone=prefs.timezone, now=now
        )

    def plan(self, notice: PendingNotice, person: Person | None, prefs: Preferences) -> tuple[list[PlannedSend], FeedItem | None]:
        """One notice's sends and feed item (in the planning transaction; renders only the feed's text). A notice
        that cannot be planned (a template that fails on it) is logged and dropped, not retried forever."""
        try:
            return self._plan(notice, person, prefs)
        except Exception:
            log.error("could not plan a notice", exc_info=True, extra={"notice": notice.id, "kind": notice.kind})
            return [], None

    def _plan(
        self, notice: PendingNotice, person: Person | None, prefs: Preferences
    ) -> tuple[list[PlannedSend], FeedItem | None]:
        now = self.clock()
        if person is not None and not person.active:
            return [], None  # deactivated: they may not sign in, and are no longer told anything
        if notice.kind == "digest":
            prefs = dataclasses.replace(prefs, digest=False)  # the digest itself goes out at once
        sends: list[PlannedSend] = []
        feed: FeedItem | None = None
        for channel in prefs.channels:
            if channel == "feed":
                if notice.kind != "digest":  # the feed already shows each message
                    message = self._message(notice, person, prefs, now)
                    feed = FeedItem(notice.recipient, notice.id, notice.kind, notice.lead_id, message.subject, message.body)
                    self._sent("feed", notice, now)
                continue
            if channel not in self.channels:
                continue
            match plan(prefs, channel, now):
                case SendNow():
                    sends.append(PlannedSend(notice.id, notice.recipient, channel, "due", now))
                case HoldUntil(at=at):
                    sends.append(PlannedSend(notice.id, notice.recipient, channel, "due", at))
                case ToDigest():
                    sends.append(PlannedSend(notice.id, notice.recipient, channel, "digest", now))
        return sends, feed

    async def send(self, send: Send) -> tuple[Send, str, datetime | None, str | None]:
        notice = send.notice
        person = await asyncio.to_thread(self.people.person, notice.recipient)
        prefs, _ = await asyncio.to_thread(self.people.preferences, notice.recipient)
        if notice.kind == "digest":
            prefs = dataclasses.replace(prefs, digest=False)
        now = self.clock()
        match plan(prefs, send.channel, now):  # preferences may have changed since it was planned
            case HoldUntil(at=at):
                return send, "due", at, None
            case ToDigest():
                return send, "digest", None, None
        try:
            message = self._message(notice, person, prefs, now)
        except Exception as exc:
            log.error("could not render a message", exc_info=True, extra={"notice": notice.id, "kind": notice.kind})
            return send, "failed", None, f"rendering failed: {type(exc).__name__}: {exc}"
        try:
            await self.channels[send.channel].send(person, message, now)
        except Unreachable as exc:
            return send, "skipped", None, str(exc)
        except SendFailed as exc:
            NOTIFICATION_FAILURES.labels(SERVICE, send.channel, "retryable" if exc.retryable else "refused").inc()
            failures = send.attempts + 1
            if exc.retryable and failures < self.attempts:
                return send, "due", now + timedelta(seconds=self.backoff.delay(failures)), str(exc)
            log.warning("gave up a message", extra={"channel": send.channel, "recipient": notice.recipient, "error": str(exc)})
            return send, "failed", None, str(exc)
        self._sent(send.channel, notice, self.clock())
        return send, "sent", None, None

    def _sent(self, channel: str, notice: PendingNotice, at: datetime) -> None:
        NOTIFICATIONS_SENT.labels(SERVICE, channel, notice.kind).inc()
        NOTIFICATION_LATENCY.labels(SERVICE, channel).observe(max(0.0, (at - notice.event_time).total_seconds()))
