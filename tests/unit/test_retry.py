"""The one retry policy: bounded, jittered, retrying only what is transient."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from shared.retry import GaveUp, RetryPolicy, permanent


def test_delays_grow_exponentially_up_to_the_cap_and_are_jittered_below_it():
    top = RetryPolicy(attempts=6, base=0.1, cap=0.5, rng=lambda: 1.0)
    assert list(top.delays()) == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    half = RetryPolicy(attempts=3, base=0.1, cap=0.5, rng=lambda: 0.5)
    assert list(half.delays()) == pytest.approx([0.05, 0.1])


def test_a_transient_failure_is_tried_again_until_it_succeeds():
    calls, slept = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise IntegrityError("version conflict")
        return "done"

    assert RetryPolicy(attempts=5, rng=lambda: 1.0).call(flaky, sleep=slept.append) == "done"
    assert len(calls) == 3 and len(slept) == 2


def test_attempts_are_bounded_and_the_last_failure_is_kept():
    slept = []

    def always():
        raise OSError("connection refused")

    with pytest.raises(GaveUp) as raised:
        RetryPolicy(attempts=4).call(always, sleep=slept.append)
    assert raised.value.attempts == 4 and isinstance(raised.value.last, OSError)
    assert len(slept) == 3


def test_a_failure_that_is_not_transient_is_not_retried():
    calls = []

    def bug():
        calls.append(1)
        raise ValueError("bad data")

    with pytest.raises(ValueError):
        RetryPolicy(attempts=5).call(bug, sleep=lambda _: None)
    assert calls == [1]


def test_the_async_form_behaves_the_same():
    calls, slept = [], []

    async def flaky():
        calls.append(1)
        if len(calls) < 2:
            raise TimeoutError
        return 7

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    assert asyncio.run(RetryPolicy(attempts=3).acall(flaky, sleep=fake_sleep)) == 7
    assert len(slept) == 1


def test_a_value_too_large_for_the_database_is_not_retried_though_psycopg_calls_it_operational():
    too_large = psycopg.errors.ProgramLimitExceeded("index row size 3136 exceeds btree version 4 maximum 2704")
    calls = []

    def insert():
        calls.append(1)
        raise too_large

    with pytest.raises(psycopg.errors.ProgramLimitExceeded):
        RetryPolicy(attempts=5).call(insert, sleep=lambda _: None)
    assert len(calls) == 1
    try:
        raise OperationalError("the same, re-raised by eventsourcing") from too_large
    except OperationalError as wrapped:
        assert permanent(wrapped) and not RetryPolicy().retryable(wrapped)
    assert not permanent(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
