"""The ticker's work: reminders whose time has come, digests due, subscriptions failing for a day, queue depths."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from services.notify import SERVICE
from services.notify.domain.preferences import digest_due
from services.notify.store.people import People
from services.notify.store.queue import DeliveryQueue
from shared.clock import Clock
from shared.metrics import NOTIFICATION_QUEUE_DEPTH, WEBHOOK_SUBSCRIPTIONS_PAUSED

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(minutes=1)


class Housekeeping:
    def __init__(
        self,
        people: People,
        queue: DeliveryQueue,
        clock: Clock,
        pause_after: timedelta,
        wake_messenger: Callable[[], None] = lambda: None,
        retention: timedelta = timedelta(days=30),
    ) -> None:
        self.people = people
        self.queue = queue
        self.clock = clock
        self.pause_after = pause_after
        self.wake_messenger = wake_messenger
        self.retention = retention
        self._purged_at: datetime | None = None

    def tick(self) -> None:
        now = self.clock()
        raised = self.people.raise_reminders(now)
        digests = 0
        for recipient, oldest in self.people.digest_waiting():
            prefs, _ = self.people.preferences(recipient)
            # Someone who turned the digest off gets what waited for it at once.
            if not prefs.digest or digest_due(prefs, oldest, now):
                digests += bool(self.people.make_digest(recipient, now))
        paused = self.queue.pause_failing(now, self.pause_after)
        for sid, owner, url in paused:
            WEBHOOK_SUBSCRIPTIONS_PAUSED.labels(SERVICE, "failing").inc()
            log.warning(
                "webhook subscription paused: failing for too long", extra={"subscription": str(sid), "owner": owner, "url": url}
            )
        if raised or digests or paused:
            self.wake_messenger()
        if self._purged_at is None or now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            self.queue.purge(now - self.retention)
            self.people.purge(now - self.retention)
        waiting, parked = self.queue.depth()
        NOTIFICATION_QUEUE_DEPTH.labels(SERVICE, "webhook").set(waiting)
        NOTIFICATION_QUEUE_DEPTH.labels(SERVICE, "webhook_parked").set(parked)
        NOTIFICATION_QUEUE_DEPTH.labels(SERVICE, "people").set(self.people.depth())
