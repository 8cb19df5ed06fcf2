"""How a worker parks: the dead-letter topic, the counter and the log line, and the bisection that finds
which records of a failing batch are the ones to park.

The order of a parking is what keeps effects exactly once: the letter is produced to the dead-letter
topic and acknowledged first, then the worker's store records the letter with the position moved past
it in one transaction. A crash between the two re-reads the record and parks it again, so the
dead-letter topic may hold a letter twice (readers de-duplicate on ``dlq-topic``, ``dlq-partition``,
``dlq-offset``); the ``dead_letters`` table never does, and nothing is ever skipped unparked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from aiokafka import AIOKafkaProducer

from shared.deadletters import DeadLetter, dlq_topic
from shared.metrics import EVENTS_DEAD_LETTERED
from shared.retry import HANDLER, TRANSIENT, GaveUp, RetryPolicy, permanent
from shared.topics import ensure_topic

log = logging.getLogger(__name__)

# How long a worker thread waits for the dead-letter topic to acknowledge a letter before it gives up
# (and the worker restarts, the record not parked, so not lost).
SEND_TIMEOUT = 60.0
# A record that failed inside a batch is tried alone this often, with back-off, before it is parked: what
# fails only in company, or only once, is applied after all. Anything raised counts here, as the batch
# already showed that the failure is not one of the transient kinds the batch retries.
ALONE: RetryPolicy = replace(HANDLER, retry_on=(Exception,))


def transient(exc: BaseException) -> bool:
    """An outage, not bad data: never parked (the worker raises, and the supervisor restarts it)."""
    return isinstance(exc, GaveUp) or (isinstance(exc, TRANSIENT) and not permanent(exc))


async def ensure_dlq_topic(bootstrap: str, topic: str, like: str) -> None:
    """Create the dead-letter topic if it is missing: one partition (few letters, read in one order),
    retained forever, replicated as ``like`` (the topic it serves). Deployments create it up front
    (``deploy/``); this covers a broker without it (tests' topics, a new environment)."""
    if await ensure_topic(bootstrap, topic, partitions=1, like=like, configs={"retention.ms": "-1"}):
        log.info("created the dead-letter topic", extra={"topic": topic})


class Parking:
    """One worker's way to the dead-letter topic: produces letters, counts and logs them once each.

    Built with the worker (so a restart brings a fresh producer); the producer starts at the first letter,
    so a worker that never parks never connects it. Every reason the worker can park for is counted from
    0 from the start, so that an alert on the first letter has a series to rise from."""

    def __init__(self, *, service: str, worker: str, bootstrap: str, topic: str, reasons: Sequence[str]) -> None:
        self.service = service
        self.worker = worker
        self.bootstrap = bootstrap
        self.source_topic = topic
        self.topic = dlq_topic(topic)
        self._producer: AIOKafkaProducer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._counters = {reason: EVENTS_DEAD_LETTERED.labels(service, worker, reason) for reason in reasons}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the producer lives on (worker threads send through it)."""
        self._loop = loop

    async def send(self, letter: DeadLetter) -> None:
        """Produce ``letter`` (key, value, original headers and ``dlq-*`` headers) and wait for the ack."""
        if self._producer is None:
            await ensure_dlq_topic(self.bootstrap, self.topic, like=self.source_topic)
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, request_timeout_ms=30000)
            await producer.start()
            self._producer = producer
        await self._producer.send_and_wait(self.topic, letter.value, key=letter.key, headers=letter.dlq_headers())

    def send_blocking(self, letter: DeadLetter) -> None:
        """:meth:`send` from a worker thread (the worker's batch is applied in one)."""
        if self._loop is None:
            raise RuntimeError("Parking.bind() was not called")
        asyncio.run_coroutine_threadsafe(self.send(letter), self._loop).result(timeout=SEND_TIMEOUT)

    def parked(self, letter: DeadLetter) -> None:
        """Count and log a letter its store recorded (once: a letter found parked before is neither)."""
        counter = self._counters.get(letter.reason)
        if counter is None:
            counter = self._counters[letter.reason] = EVENTS_DEAD_LETTERED.labels(self.service, self.worker, letter.reason)
        counter.inc()
        log.error(
            "parked an event it cannot apply (dead-lettered); going on",
            extra={
                "worker": self.worker,
                "reason": letter.reason,
                "error": letter.error,
                "topic": letter.topic,
                "partition": letter.partition,
                "offset": letter.offset,
                "lead_id": letter.lead_id,
                "event_id": letter.event_id,
                "event_type": letter.event_type,
                "attempts": letter.attempts,
                "dead_letter_topic": self.topic,
            },
        )

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


def isolate(
    count: int,
    apply: Callable[[int, int], int],
    park: Callable[[int, BaseException, int], None],
    error: BaseException,
    *,
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """Apply items ``0 .. count-1`` in order after applying them together failed with ``error`` (not
    transient): halves are applied on their own, recursively, so that only an item that still fails
    alone after :data:`ALONE`'s retries is parked, and every other item is applied, once.

    ``apply(lo, hi)`` applies items ``lo .. hi-1`` and records the position after them, in one
    transaction, and returns how many it applied; ``park(i, error, attempts)`` parks item ``i`` and
    records the position after it, in one transaction. A transient failure on the way propagates:
    parking during an outage would park good records. A failure with nothing to apply (``count`` 0)
    is not a record's fault, and propagates too. Runs in the worker's thread (it sleeps between retries)."""
    if count == 0:
        raise error

    def settle(lo: int, hi: int, failed: BaseException | None, tried: int) -> int:
        """``tried``: how many calls so far included these items (a letter's ``attempts``)."""
        if hi - lo == 1:
            try:
                return ALONE.call(lambda: apply(lo, hi), sleep=sleep)
            except Exception as exc:  # GaveUp after its attempts, or at once what is never retried
                last, attempts = (exc.last, exc.attempts) if isinstance(exc, GaveUp) else (exc, 1)
                if transient(last):
                    raise
                park(lo, last, tried + attempts)
                return 0
        if failed is None:
            try:
                return HANDLER.call(lambda: apply(lo, hi), sleep=sleep)
            except Exception as exc:
                if transient(exc):
                    raise
                tried += 1
        mid = (lo + hi) // 2
        return settle(lo, mid, None, tried) + settle(mid, hi, None, tried)

    return settle(0, count, error, 1)
