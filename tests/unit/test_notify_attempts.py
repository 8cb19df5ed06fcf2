"""What an attempt's answer means: delivered, tried again (exponential back-off, full jitter, ~24 h), or parked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notify.domain.attempts import Answer, Delivered, Parked, RetryAt, after_attempt, retry_after_seconds
from shared.retry import RetryPolicy

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# rng 1.0: the longest pause full jitter can draw, so the test sees the schedule's bound.
POLICY = RetryPolicy(attempts=1_000_000, base=5, cap=3600, rng=lambda: 1.0)
DAY = timedelta(hours=24)


def next_after(answer: Answer, failures: int = 1, now: datetime = T0, first: datetime = T0):
    return after_attempt(answer, failures=failures, first_attempt_at=first, now=now, policy=POLICY, retry_for=DAY)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status):
    assert next_after(Answer(status=status)) == Delivered()


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429, 301, 307])
def test_server_errors_timeouts_throttling_and_redirects_are_retried(status):
    assert isinstance(next_after(Answer(status=status)), RetryAt)


@pytest.mark.parametrize("failure", ["timeout", "connect"])
def test_no_answer_is_retried(failure):
    assert isinstance(next_after(Answer(failure=failure)), RetryAt)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 422])
def test_other_4xx_are_parked_at_once(status):
    parked = next_after(Answer(status=status))
    assert isinstance(parked, Parked) and parked.kind == "rejected" and not parked.pause_subscription


def test_410_gone_parks_and_pauses_the_subscription():
    parked = next_after(Answer(status=410))
    assert isinstance(parked, Parked) and parked.pause_subscription


def test_an_address_the_guard_refuses_is_parked():
    parked = next_after(Answer(failure="refused-address", error="127.0.0.1 is a loopback address"))
    assert isinstance(parked, Parked) and parked.kind == "refused_address" and "loopback" in parked.reason


def test_back_off_doubles_up_to_the_cap():
    waits = [(next_after(Answer(status=503), failures=n).at - T0).total_seconds() for n in range(1, 14)]
    assert waits[:5] == [5, 10, 20, 40, 80]
    assert max(waits) == 3600 and waits[-1] == 3600


def test_jitter_draws_the_pause_at_random_below_the_bound():
    jittery = RetryPolicy(attempts=1_000_000, base=5, cap=3600, rng=lambda: 0.25)
    retry = after_attempt(Answer(status=500), failures=3, first_attempt_at=T0, now=T0, policy=jittery, retry_for=DAY)
    assert retry == RetryAt(T0 + timedelta(seconds=5))


def test_retry_after_is_honoured_up_to_the_cap():
    assert next_after(Answer(status=429, retry_after=120)) == RetryAt(T0 + timedelta(seconds=120))
    assert next_after(Answer(status=503, retry_after=10**9)) == RetryAt(T0 + timedelta(seconds=3600))
    assert retry_after_seconds("30") == 30 and retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None


def test_after_a_day_of_failures_the_delivery_is_parked():
    late = T0 + DAY - timedelta(minutes=1)
    parked = next_after(Answer(status=500), failures=40, now=late)
    assert isinstance(parked, Parked) and parked.kind == "gave_up" and "40 attempts" in parked.reason
    assert isinstance(next_after(Answer(status=500), failures=40, now=T0 + timedelta(hours=20)), RetryAt)
