"""Parking, on fakes: which records of a failing batch are parked (only those that fail alone), what a
letter carries, and that an outage parks nothing."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from shared.deadletters import HANDLER_ERROR, DeadLetter, dlq_topic, printable
from shared.deadletters.parking import ALONE, isolate, transient
from shared.retry import GaveUp


class Log:
    """A fake store: what was applied (in order, each once), what was parked, where the position is."""

    def __init__(self, items: list[str], bad: set[str], flaky: dict[str, int] | None = None) -> None:
        self.items = items
        self.bad = bad
        self.flaky = dict(flaky or {})  # item -> failures left before it succeeds
        self.applied: list[str] = []
        self.parked: list[tuple[str, int]] = []
        self.position = 0
        self.calls = 0

    def apply(self, lo: int, hi: int) -> int:
        self.calls += 1
        assert lo == self.position, "a range is applied only from the stored position on"
        part = self.items[lo:hi]
        for item in part:
            if item in self.bad:
                raise ValueError(f"cannot apply {item}")
            if self.flaky.get(item):
                self.flaky[item] -= 1
                raise KeyError(item)
        self.applied.extend(part)
        self.position = hi
        return len(part)

    def park(self, i: int, error: BaseException, attempts: int) -> None:
        assert i == self.position
        self.parked.append((self.items[i], attempts))
        self.position = i + 1


def run(log: Log) -> int:
    try:
        return log.apply(0, len(log.items))
    except ValueError as exc:
        return isolate(len(log.items), log.apply, log.park, exc, sleep=lambda _: None)


def test_only_the_bad_records_are_parked_and_every_other_is_applied_once_in_order():
    items = [f"r{n}" for n in range(100)]
    log = Log(items, bad={"r7", "r8", "r63"})
    assert run(log) == 97
    assert log.applied == [i for i in items if i not in {"r7", "r8", "r63"}]
    assert [item for item, _ in log.parked] == ["r7", "r8", "r63"]
    assert log.position == 100
    assert log.calls < 80, "bisection, not one call per record"


def test_a_record_is_tried_alone_with_retries_before_it_is_parked():
    log = Log(["a", "b", "c"], bad={"b"})
    run(log)
    ((item, attempts),) = log.parked
    assert item == "b"
    # the whole batch, its half, then ALONE's attempts
    assert attempts == 2 + ALONE.attempts


def test_a_record_that_fails_only_once_is_applied_not_parked():
    log = Log(["a", "b", "c", "d"], bad=set(), flaky={"c": 2})
    log.flaky["c"] = 3  # fails in the batch, in its half, and once alone
    with pytest.raises(KeyError):
        log.apply(0, 4)
    assert isolate(4, log.apply, log.park, KeyError("c"), sleep=lambda _: None) == 4
    assert log.applied == ["a", "b", "c", "d"] and not log.parked


def test_an_outage_parks_nothing_and_raises():
    log = Log(["a", "b"], bad=set())

    def down(lo: int, hi: int) -> int:
        raise psycopg.OperationalError("connection refused")

    with pytest.raises(GaveUp):
        isolate(2, down, log.park, ValueError("first failure"), sleep=lambda _: None)
    assert not log.parked


def test_a_failure_with_no_record_to_blame_is_raised():
    with pytest.raises(ValueError):
        isolate(0, lambda lo, hi: 0, lambda *a: None, ValueError("schema broken"))


def test_transient_means_an_outage():
    assert transient(psycopg.OperationalError("down"))
    assert transient(OperationalError("eventsourcing's, from psycopg's"))
    assert transient(OSError("reset"))
    assert not transient(psycopg.DataError("NUL in text"))
    assert not transient(ValueError("bad data"))


def test_a_letter_carries_the_original_headers_then_where_it_came_from_and_why():
    letter = DeadLetter(
        service="assignment",
        worker="consumer",
        topic="leadflow.lead-events",
        partition=3,
        offset=1234,
        key=b"lead-1",
        value=b"not json",
        headers=(("ce_type", b"LeadCaptured"),),
        reason=HANDLER_ERROR,
        error="ValueError: boom",
        attempts=5,
        parked_at=datetime(2026, 12, 1, 8, 30, tzinfo=UTC),
    )
    headers = dict(letter.dlq_headers())
    assert letter.dlq_headers()[0] == ("ce_type", b"LeadCaptured")
    assert {k: v.decode() for k, v in headers.items() if k.startswith("dlq-")} == {
        "dlq-service": "assignment",
        "dlq-worker": "consumer",
        "dlq-topic": "leadflow.lead-events",
        "dlq-partition": "3",
        "dlq-offset": "1234",
        "dlq-reason": "handler-error",
        "dlq-error": "ValueError: boom",
        "dlq-attempts": "5",
        "dlq-time": "2026-12-01T08:30:00Z",
    }
    assert dlq_topic("leadflow.lead-events") == "leadflow.lead-events.dlq"


def test_an_error_text_is_safe_for_a_text_column_and_bounded():
    assert printable("bad \x00 name \ud800") == "bad \\x00 name ?"
    assert len(printable("x" * 10_000)) == 2000


def test_a_record_too_large_for_the_database_is_parked_not_taken_for_an_outage():
    log = Log(["a", "huge", "b"], bad=set())
    original = log.apply

    def apply(lo: int, hi: int) -> int:
        if "huge" in log.items[lo:hi]:
            raise psycopg.errors.ProgramLimitExceeded("index row size 3136 exceeds btree version 4 maximum 2704")
        return original(lo, hi)

    assert isolate(3, apply, log.park, psycopg.errors.ProgramLimitExceeded("first"), sleep=lambda _: None) == 2
    assert log.applied == ["a", "b"] and [item for item, _ in log.parked] == ["huge"]
    assert not transient(psycopg.errors.ProgramLimitExceeded("too large"))


def test_every_consumer_and_projector_a_service_builds_can_park():
    """Tools and tests may build a TopicConsumer or a projector that cannot park; a service never does."""
    root = Path(__file__).resolve().parents[2] / "services"
    needs = {"TopicConsumer": "dead_letters", "Projector": "parking", "TaskBoardProjector": "parking"}
    built = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # shared.projector.projector_worker builds the projector it is given with parking of its own.
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "projector_worker":
                built.append(node.args[0].id)
                continue
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in needs:
                built.append(node.func.id)
                given = {keyword.arg for keyword in node.keywords}
                assert needs[node.func.id] in given, (
                    f"{path.relative_to(root.parent)}:{node.lineno} builds {node.func.id} without it"
                )
                if node.func.id == "TopicConsumer":
                    assert "worker" in given, f"{path.relative_to(root.parent)}:{node.lineno} names no worker"
    assert sorted(set(built)) == sorted(needs), "the check found what it checks"
