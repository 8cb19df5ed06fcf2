"""What one delivery attempt's answer means, and what happens next: delivered, tried again later, or parked.

Retries use the project's one back-off (:class:`shared.retry.RetryPolicy`: exponential, full jitter) for up to
``retry_for`` after the first attempt, then the delivery is parked: kept, visible and re-sendable, never retried
forever. A receiver that refuses the delivery itself (4xx other than 408 Request Timeout and 429 Too Many
Requests) will refuse it again, so it is parked at once; ``410 Gone`` also pauses the subscription (the Standard
Webhooks advice: the endpoint is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared.retry import RetryPolicy

Failure = Literal["timeout", "connect", "refused-address", "http"]


@dataclass(frozen=True, slots=True)
class Answer:
    """How an attempt ended: the receiver's HTTP status, or why there was none."""

    status: int | None = None
    failure: Failure | None = None
    error: str | None = None
    retry_after: float | None = None
    """Seconds the receiver asked us to wait (``Retry-After`` on 429/503)."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def reason(self) -> str:
        """A short, bounded label for metrics: ``timeout``, ``connect``, ``refused-address``, ``http_4xx``, ``http_5xx``…"""
        if self.status is not None:
            return f"http_{self.status // 100}xx"
        return self.failure or "error"


@dataclass(frozen=True, slots=True)
class Delivered:
    pass


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True, slots=True)
class Parked:
    reason: str
    kind: Literal["rejected", "refused_address", "gave_up"] = "gave_up"
    pause_subscription: bool = False


Next = Delivered | RetryAt | Parked


def _retryable_status(status: int) -> bool:
    # 3xx too: redirects are not followed (a redirect could lead anywhere, past the address check), and a
    # temporary one may be gone on the next attempt.
    return status in (408, 429) or status >= 500 or 300 <= status < 400


def after_attempt(
    answer: Answer,
    *,
    failures: int,
    first_attempt_at: datetime,
    now: datetime,
    policy: RetryPolicy,
    retry_for: timedelta,
) -> Next:
    """``failures``: consecutive failed attempts of this delivery, this one included."""
    if answer.ok:
        return Delivered()
    if answer.failure == "refused-address":
        return Parked(f"refused: {answer.error}", "refused_address")
    if answer.status is not None and not _retryable_status(answer.status):
        return Parked(f"receiver answered {answer.status}", "rejected", pause_subscription=answer.status == 410)
    delay = policy.delay(failures)
    if answer.retry_after is not None:
        delay = max(delay, min(answer.retry_after, policy.cap))
    at = now + timedelta(seconds=delay)
    if at > first_attempt_at + retry_for:
        return Parked(f"gave up after {failures} attempts over {_hours(now - first_attempt_at)}")
    return RetryAt(at)


def _hours(span: timedelta) -> str:
    seconds = span.total_seconds()
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (the delta form; an HTTP date is ignored rather than trusted to clocks)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
