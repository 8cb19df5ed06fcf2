"""The shared catch-up rules (shared.positions, shared.catchup) on fakes: a fake clock that moves only when the code under test
waits, a scripted partition, no broker, no sleeping."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from shared.catchup import CatchUp, NotYetSeen, OwnWrites
from shared.positions import LOG, Positions, TopicPositions, partition_of

# Computed with Kafka's own Java client (kafka-clients 4.1.1): Utils.murmur2(key.getBytes(UTF_8)),
# and Utils.toPositive(murmur2) % partitions, which is what its default partitioner does with a key.
KAFKA = [
    ("21", -973932308, 0, 0),
    ("foobar", -790332482, 0, 0),
    ("", 275646681, 3, 0),
    ("a", -1563381124, 4, 1),
    ("abc", 479470107, 3, 0),
    ("6f1c1a9e-5e2b-4c4e-9d1a-0d2f6f1b2c3d", 1303221580, 4, 1),
    ("00000000-0000-0000-0000-000000000000", 713427837, 3, 0),
    ("d3b07384-d113-4ec6-a64a-7d0c1f6a3b2e", -941283573, 5, 2),
    ("王芳", 1236822896, 2, 2),
]


@pytest.mark.parametrize(("key", "murmur2", "of_six", "of_three"), KAFKA)
def test_the_partition_of_a_key_is_the_one_kafkas_default_partitioner_picks(key, murmur2, of_six, of_three):
    assert (partition_of(key, 6), partition_of(key, 3)) == (of_six, of_three)
    assert partition_of(key, 1) == 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Partition:
    """One partition of the topic as the waiting code sees it: records arrive (the end moves) and the consumer
    applies them (the position moves) at scripted times; waiting moves the fake clock to the next of them."""

    clock: Clock
    end: int = 0
    at: int = 0
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, new end)
    applies: list[tuple[float, int]] = field(default_factory=list)  # (time, new position)
    on_apply: dict[int, object] = field(default_factory=dict)  # position → what becomes known then
    end_reads: list[float] = field(default_factory=list)
    waits: int = 0

    def partition_of(self, key: str) -> int | None:
        return 2

    async def end_offset(self, partition: int) -> int | None:
        self._advance_to(self.clock.now)
        self.end_reads.append(self.clock.now)
        return self.end

    async def applied(self, partition: int) -> int | None:
        return self.at

    async def changed(self, partition: int | None, timeout: float) -> None:
        self.waits += 1
        until = self.clock.now + timeout
        upcoming = [t for t, _ in self.applies if self.clock.now < t <= until]
        self.clock.now = min(upcoming) if upcoming else until
        self._advance_to(self.clock.now)

    def _advance_to(self, now: float) -> None:
        for t, end in self.arrivals:
            if t <= now:
                self.end = max(self.end, end)
        for t, position in self.applies:
            if t <= now:
                self.at = max(self.at, position)


def waiting(partition: Partition, **options: float) -> CatchUp:
    return CatchUp(partition, clock=partition.clock, **{"timeout": 2.0, "grace": 0.5, **options})


def run(coroutine):
    return asyncio.run(coroutine)


def test_an_event_on_the_topic_but_not_consumed_yet_is_waited_for_and_the_request_goes_through():
    clock = Clock()
    part = Partition(clock, end=10, at=7, applies=[(100.08, 10)])
    known = {"at": 10}

    async def ask() -> bool:
        return part.at >= known["at"]

    caught = run(waiting(part).until("lead", ask))
    assert caught.seen and clock.now == pytest.approx(100.08)


def test_an_event_still_in_its_producers_outbox_is_waited_for_through_the_grace():
    """The claim right after a capture: intake's relay publishes it 40 ms after the request."""
    clock = Clock()
    part = Partition(clock, end=10, at=10, arrivals=[(100.04, 11)], applies=[(100.09, 11)])

    async def ask() -> bool:
        return part.at >= 11

    caught = run(waiting(part).until("lead", ask))
    assert caught.seen and clock.now == pytest.approx(100.09)


def test_a_lead_nobody_published_is_refused_once_the_grace_is_over_and_the_partition_read_to_its_end():
    clock = Clock()
    part = Partition(clock, end=10, at=10, arrivals=[(100.3, 12)], applies=[(100.35, 12)])

    async def ask() -> bool:
        return False

    caught = run(waiting(part).until("lead", ask))
    assert (caught.seen, caught.caught_up) == (False, True)
    # The end is read at the request and again when the grace is over, and what arrived by then is applied first.
    assert part.end_reads == [pytest.approx(100.0), pytest.approx(100.5)]
    assert clock.now == pytest.approx(100.5)


def test_without_a_grace_only_what_was_on_the_partition_at_the_request_counts():
    clock = Clock()
    part = Partition(clock, end=10, at=8, applies=[(100.02, 10), (100.2, 11)], arrivals=[(100.1, 11)])

    async def ask() -> bool:
        return part.at >= 11

    caught = run(waiting(part, grace=0).until("lead", ask))
    assert (caught.seen, caught.caught_up) == (False, True) and clock.now == pytest.approx(100.02)


def test_a_consumer_that_cannot_catch_up_in_time_ends_the_wait_at_the_timeout_not_caught_up():
    clock = Clock()
    part = Partition(clock, end=50_000, at=10, applies=[(100.0 + n / 10, 10 + n * 100) for n in range(1, 40)])
    asked: list[int] = []

    async def ask() -> bool:
        asked.append(part.at)
        return False

    caught = run(waiting(part).until("lead", ask))
    assert (caught.seen, caught.caught_up) == (False, False) and clock.now == pytest.approx(102.0)
    assert asked == sorted(set(asked)) and len(asked) > 10  # asked again on every move, never twice for one position


def test_the_first_question_is_asked_before_waiting_so_an_event_applied_meanwhile_is_not_missed():
    clock = Clock()
    part = Partition(clock, end=10, at=10)

    async def ask() -> bool:
        return True

    assert run(waiting(part).until("lead", ask)).seen and part.waits == 0 and clock.now == 100.0


def test_attempt_runs_the_command_again_as_the_partition_moves_and_returns_its_answer():
    clock = Clock()
    part = Partition(clock, end=3, at=1, applies=[(100.05, 2), (100.06, 3)])
    tries: list[int] = []

    async def claim() -> str:
        tries.append(part.at)
        if part.at < 3:
            raise LookupError("no such lead")
        return "claimed"

    assert run(waiting(part).attempt("lead", claim, (LookupError,))) == "claimed"
    assert tries == [1, 1, 2, 3]


def test_attempt_raises_not_yet_seen_with_the_last_refusal_and_lets_other_errors_through():
    clock = Clock()
    part = Partition(clock, end=3, at=3)

    async def refused() -> str:
        raise LookupError("still no lead")

    with pytest.raises(NotYetSeen) as unseen:
        run(waiting(part).attempt("lead", refused, (LookupError,)))
    assert str(unseen.value.refusal) == "still no lead" and unseen.value.caught_up

    async def broken() -> str:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        run(waiting(part).attempt("lead", broken, (LookupError,)))


class Source:
    """What a running consumer tells TopicPositions."""

    def __init__(self, partitions: int = 6, end: int = 0, stored: dict[int, int | None] | None = None) -> None:
        self.partitions = partitions
        self.end = end
        self.stored = stored or {}

    def partition_count(self) -> int | None:
        return self.partitions

    async def end_offset(self, partition: int) -> int:
        return self.end

    def stored_positions(self, partitions: list[int]) -> dict[int, int | None]:
        return {p: self.stored.get(p) for p in partitions}


def test_topic_positions_answer_for_their_own_partitions_and_from_storage_for_the_others():
    async def scenario() -> None:
        positions = TopicPositions()
        assert positions.partition_of("21") is None and await positions.end_offset(0) is None
        source = Source(stored={1: 40})
        positions.attach(source)
        positions.reached(0, 12)
        positions.reached(0, 9)  # never back
        assert positions.partition_of("21") == 0 and await positions.applied(0) == 12
        assert await positions.applied(1) == 40 and await positions.applied(2) == 0
        positions.forget([0])  # a rebalance gave it to another replica
        assert await positions.applied(0) == 0
        positions.detach(Source())  # another consumer's detach changes nothing
        assert positions.partition_of("21") == 0
        positions.detach(source)
        assert positions.partition_of("21") is None

    run(scenario())


def test_a_move_wakes_who_waits_for_it():
    async def scenario() -> float:
        positions = Positions()
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, positions.reached, LOG, 5)
        started = loop.time()
        await positions.changed(LOG, 5.0)
        return loop.time() - started

    assert run(scenario()) < 1.0


class Projector:
    """A read model's projector as OwnWrites sees it: each nudge lets it project one more step."""

    def __init__(self, clock: Clock, position: int, steps: list[int], step_seconds: float = 0.003) -> None:
        self.clock = clock
        self.at = position
        self.steps = steps
        self.step_seconds = step_seconds
        self.nudges = 0

    def position(self, partition: int = LOG) -> int | None:
        return self.at

    async def changed(self, partition: int | None, timeout: float) -> None:
        if self.steps and self.nudges:
            self.clock.now += min(timeout, self.step_seconds)
            self.at = self.steps.pop(0)
        else:
            self.clock.now += timeout

    def nudge(self) -> None:
        self.nudges += 1


def test_a_list_waits_until_the_projector_passed_the_newest_write_nudging_it():
    clock = Clock()
    projector = Projector(clock, position=40, steps=[41, 43])
    own = OwnWrites(lambda: 43, projector, projector.nudge, timeout=2.0, clock=clock)
    assert run(own.wait()) and projector.at == 43 and projector.nudges == 2
    assert clock.now == pytest.approx(100.006)


def test_a_list_with_nothing_newer_than_the_projector_does_not_wait():
    clock = Clock()
    projector = Projector(clock, position=43, steps=[])
    assert run(OwnWrites(lambda: 43, projector, projector.nudge, clock=clock).wait()) and projector.nudges == 0
    assert run(OwnWrites(lambda: None, projector, projector.nudge, clock=clock).wait())
    assert clock.now == 100.0


def test_a_projector_that_does_not_get_there_in_time_lets_the_list_be_served_after_the_timeout():
    clock = Clock()
    projector = Projector(clock, position=1, steps=[])
    assert not run(OwnWrites(lambda: 43, projector, projector.nudge, timeout=2.0, clock=clock).wait())
    assert clock.now == pytest.approx(102.0)


def test_settling_waits_through_the_grace_and_until_what_arrived_by_then_is_applied():
    """A 360 view asked for right after a release: assignment's relay publishes it 40 ms later."""
    clock = Clock()
    part = Partition(clock, end=10, at=10, arrivals=[(100.04, 11), (100.49, 12)], applies=[(100.09, 11), (100.55, 12)])
    assert run(waiting(part).settle("lead"))
    assert part.at == 12 and clock.now == pytest.approx(100.55)


def test_settling_gives_up_at_the_timeout_when_the_consumer_is_far_behind():
    clock = Clock()
    part = Partition(clock, end=10_000, at=10)
    assert not run(waiting(part).settle("lead")) and clock.now == pytest.approx(102.0)
