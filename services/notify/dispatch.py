"""The webhook delivery worker: lease due lane heads, attempt them concurrently, record the outcomes in batches.

At most ``webhook_max_in_flight`` attempts run at once, and at most ``webhook_max_in_flight_per_subscription`` for
one subscription, so a receiver that hangs until its time-out holds only its own lanes: other subscriptions and
other leads of the same one go on. Outcomes are recorded in batches (one transaction for many attempts), which is
what lets one process deliver thousands a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from datetime import timedelta
from typing import Any
from uuid import UUID

from services.notify import SERVICE
from services.notify.domain.attempts import Delivered, Parked, after_attempt
from services.notify.sender import WebhookSender
from services.notify.store.queue import DeliveryQueue, Outcome, Work
from shared.clock import Clock
from shared.metrics import (
    NOTIFICATION_FAILURES,
    NOTIFICATION_LATENCY,
    NOTIFICATIONS_SENT,
    WEBHOOK_ATTEMPT_DURATION,
    WEBHOOK_SUBSCRIPTIONS_PAUSED,
    WEBHOOKS_PARKED,
)
from shared.retry import HANDLER, RetryPolicy
from shared.supervisor import WorkerHealth

log = logging.getLogger(__name__)

CLAIM_BATCH = 500
# Outcomes wait this long for company before they are recorded: a burst is written in a few transactions.
FLUSH_DELAY = 0.005
CLAIM_COALESCE = 0.002


class Dispatcher:
    def __init__(
        self,
        queue: DeliveryQueue,
        sender: WebhookSender,
        *,
        clock: Clock,
        backoff: RetryPolicy,
        retry_for: timedelta,
        max_in_flight: int,
        max_per_subscription: int,
        poll_interval: float,
        wake: asyncio.Event,
        health: WorkerHealth | None = None,
    ) -> None:
        self.queue = queue
        self.sender = sender
        self.clock = clock
        self.backoff = backoff
        self.retry_for = retry_for
        self.max_in_flight = max_in_flight
        self.max_per_subscription = max_per_subscription
        self.poll_interval = poll_interval
        self.wake = wake
        self.health = health
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_subscription: Counter[UUID] = Counter()
        self._outcomes: list[Outcome] = []
        self._have_outcomes = asyncio.Event()
        # The series touched on every attempt, looked up once (``labels()`` validates and locks on each call).
        self._durations = WEBHOOK_ATTEMPT_DURATION.labels(SERVICE)
        self._latency = NOTIFICATION_LATENCY.labels(SERVICE, "webhook")
        self._sent: dict[str, Any] = {}

    def _sent_of(self, event_type: str) -> Any:
        series = self._sent.get(event_type)
        if series is None:
            series = self._sent[event_type] = NOTIFICATIONS_SENT.labels(SERVICE, "webhook", event_type)
        return series

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self) -> None:
        flusher = asyncio.create_task(self._record_outcomes())
        try:
            while not self._stopping:
                free = self.max_in_flight - len(self._tasks)
                claimed = 0
                if free > 0:
                    room = {sid: self.max_per_subscription - n for sid, n in self._per_subscription.items() if n}
                    limit = min(free, CLAIM_BATCH)
                    work = await asyncio.to_thread(self.queue.claim, self.clock(), limit, room, self.max_per_subscription)
                    for item in work:
                        self._start(item)
                    claimed = len(work)
                    if self.health is not None:
                        self.health.progressed()
                    if claimed == limit:
                        continue  # more may be due right now
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_interval)
                # Attempts end one by one: a moment's wait lets a claim take many freed slots in one round trip.
                await asyncio.sleep(CLAIM_COALESCE)
        finally:
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.sender.timeout + 1)
            self._stopping = True
            self._have_outcomes.set()
            await flusher
            await self.sender.close()

    def _start(self, work: Work) -> None:
        self._per_subscription[work.subscription_id] += 1
        task = asyncio.create_task(self._attempt(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, work: Work) -> None:
        try:
            now = self.clock()
            started = time.perf_counter()
            answer = await self.sender.post(work.url, work.secret, work.event_id, work.body, now, work.previous_secret)
            duration = time.perf_counter() - started
            at = self.clock()
            outcome = after_attempt(
                answer,
                failures=work.failures + 1,
                first_attempt_at=work.first_attempt_at or now,
                now=at,
                policy=self.backoff,
                retry_for=self.retry_for,
            )
            self._durations.observe(duration)
            if isinstance(outcome, Delivered):
                self._sent_of(work.type).inc()
                self._latency.observe(max(0.0, (at - work.event_time).total_seconds()))
            else:
                NOTIFICATION_FAILURES.labels(SERVICE, "webhook", answer.reason).inc()
                if isinstance(outcome, Parked):
                    WEBHOOKS_PARKED.labels(SERVICE, outcome.kind).inc()
                    log.warning(
                        "webhook delivery parked",
                        extra={
                            "delivery_id": work.delivery_id,
                            "subscription": str(work.subscription_id),
                            "reason": outcome.reason,
                        },
                    )
            self._outcomes.append(Outcome(work, answer, at, duration, outcome))
            self._have_outcomes.set()
        finally:
            self._per_subscription[work.subscription_id] -= 1
            if self._per_subscription[work.subscription_id] <= 0:
                del self._per_subscription[work.subscription_id]
            self.wake.set()

    async def _record_outcomes(self) -> None:
        while True:
            await self._have_outcomes.wait()
            if not self._stopping:
                await asyncio.sleep(FLUSH_DELAY)
            self._have_outcomes.clear()
            batch, self._outcomes = self._outcomes, []
            if batch:
                paused = await HANDLER.acall(lambda batch=batch: asyncio.to_thread(self.queue.complete, batch, self.clock()))
                for _ in paused:
                    WEBHOOK_SUBSCRIPTIONS_PAUSED.labels(SERVICE, "gone").inc()
                self.wake.set()  # the lanes of what was delivered are due again
            if self._stopping and not self._outcomes:
                return
