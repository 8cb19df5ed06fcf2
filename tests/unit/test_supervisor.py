"""The worker runtime: fresh workers after a crash, bounded back-off, and health a readiness probe can trust.

A fake clock and a sleep that only advances it: nothing here waits in real time."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from prometheus_client import REGISTRY

from shared.logs import Throttle
from shared.retry import RetryPolicy
from shared.supervisor import HealthRules, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def supervisor(clock: Clock, **rules: float) -> Supervisor:
    async def sleep(seconds: float) -> None:
        clock.now += seconds
        await asyncio.sleep(0)

    return Supervisor(
        "svc-test",
        rules=HealthRules(**rules),
        restart=RetryPolicy(attempts=10**6, base=1.0, cap=4.0, rng=lambda: 1.0),
        clock=clock,
        sleep=sleep,
    )


class Crashing:
    """Fails its first ``crashes`` runs (each a new instance), then works until stopped."""

    built: ClassVar[list[Crashing]] = []

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.runs = 0
        self.stopped = asyncio.Event()
        Crashing.built.append(self)

    async def run(self) -> None:
        if len(Crashing.built) <= self.crashes:
            raise RuntimeError(f"boom {len(Crashing.built)}")
        await self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()


def restarts(worker: str) -> float:
    return REGISTRY.get_sample_value("leadflow_worker_restarts_total", {"service": "svc-test", "worker": worker}) or 0.0


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def test_a_crashed_worker_is_rebuilt_not_rerun_and_its_restarts_are_counted():
    async def scenario() -> None:
        Crashing.built = []
        clock = Clock()
        workers = supervisor(clock)
        before = restarts("crashy")
        workers.start("crashy", lambda health: Crashing(crashes=2))
        await settle()
        assert len(Crashing.built) == 3  # two crashed instances, a third one running
        assert len({id(w) for w in Crashing.built}) == 3
        assert restarts("crashy") - before == 2
        assert clock.now == 1000.0 + 1.0 + 2.0  # back-off: 1 s, then 2 s
        await workers.stop()
        assert Crashing.built[-1].stopped.is_set()

    asyncio.run(scenario())


def test_the_restart_counter_exists_at_zero_before_any_crash():
    async def scenario() -> None:
        workers = supervisor(Clock())
        workers.start("steady", lambda health: Crashing(crashes=-1))
        await settle()
        assert REGISTRY.get_sample_value("leadflow_worker_restarts_total", {"service": "svc-test", "worker": "steady"}) == 0.0
        await workers.stop()

    asyncio.run(scenario())


def test_crash_looping_makes_the_worker_a_problem_until_it_has_been_quiet_for_the_window():
    async def scenario() -> None:
        Crashing.built = []
        clock = Clock()
        workers = supervisor(clock, crash_loop_restarts=3, crash_loop_window=60.0)
        workers.start("loop", lambda health: Crashing(crashes=3))
        await settle()
        assert "crash-looping" in workers.problems()["loop"]
        clock.now += 61
        assert workers.problems() == {}
        await workers.stop()

    asyncio.run(scenario())


def test_a_worker_that_works_again_after_restarts_is_not_crash_looping():
    async def scenario() -> None:
        Crashing.built = []
        clock = Clock()
        workers = supervisor(clock, crash_loop_restarts=3, crash_loop_window=60.0)
        health = workers.start("recovering", lambda health: Crashing(crashes=3))
        await settle()
        assert "crash-looping" in workers.problems()["recovering"]  # running again, but not moved yet
        health.progressed()  # e.g. the database is back and its first batch went through
        assert workers.problems() == {}
        await workers.stop()

    asyncio.run(scenario())


def test_a_worker_with_lag_and_no_progress_is_stalled_and_recovers_when_it_moves():
    async def scenario() -> None:
        clock = Clock()
        workers = supervisor(clock, stall_after=30.0)
        health = workers.start("relay", lambda health: Crashing(crashes=-1))
        await settle()
        health.report_lag(250)
        clock.now += 10
        assert workers.problems() == {}
        clock.now += 25
        assert "stalled" in workers.problems()["relay"]
        health.progressed()
        assert workers.problems() == {}
        health.report_lag(0)
        clock.now += 100
        assert workers.problems() == {}  # idle with nothing waiting is fine
        await workers.stop()

    asyncio.run(scenario())


def test_back_off_starts_anew_after_a_long_healthy_run():
    async def scenario() -> None:
        clock = Clock()
        pauses: list[float] = []

        async def sleep(seconds: float) -> None:
            pauses.append(seconds)
            await asyncio.sleep(0)

        class LongThenCrash:
            runs = 0

            async def run(self) -> None:
                LongThenCrash.runs += 1
                if LongThenCrash.runs in (1, 2, 4):
                    raise RuntimeError("quick crash")
                if LongThenCrash.runs == 3:
                    clock.now += 600  # ran well for ten minutes
                    raise RuntimeError("late crash")
                await asyncio.Event().wait()

            def stop(self) -> None:
                pass

        workers = Supervisor(
            "svc-test",
            restart=RetryPolicy(attempts=10**6, base=1.0, cap=8.0, rng=lambda: 1.0),
            clock=clock,
            sleep=sleep,
        )
        workers.start("long", lambda health: LongThenCrash())
        await settle()
        assert pauses == [1.0, 2.0, 1.0, 2.0]
        await workers.stop(timeout=0.01)

    asyncio.run(scenario())


def test_halt_stops_one_worker_and_forgets_it():
    async def scenario() -> None:
        workers = supervisor(Clock())
        workers.start("a", lambda health: Crashing(crashes=-1))
        workers.start("b", lambda health: Crashing(crashes=-1))
        await settle()
        await workers.halt("a")
        assert set(workers.health) == {"b"}
        workers.start("a", lambda health: Crashing(crashes=-1))  # and may start again under the same name
        await workers.stop()

    asyncio.run(scenario())


def test_throttle_lets_one_line_through_per_interval_and_counts_the_rest():
    clock = Clock()
    throttle = Throttle(interval=30.0, clock=clock)
    assert throttle.allow("kafka-down")
    assert not throttle.allow("kafka-down") and not throttle.allow("kafka-down")
    assert throttle.allow("other")
    clock.now += 31
    assert throttle.allow("kafka-down")
    assert throttle.suppressed("kafka-down") == 2


def test_a_repeated_warning_is_logged_once_per_interval_saying_how_many_were_held_back():
    import logging

    from shared.logs import RepeatFilter

    clock = Clock()
    repeats = RepeatFilter(interval=30.0, clock=clock)

    def record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", level, __file__, 1, msg, ("node 1",), None)

    assert repeats.filter(record("Unable connect to %s"))
    assert not any(repeats.filter(record("Unable connect to %s")) for _ in range(50))
    assert repeats.filter(record("another failure %s"))
    assert repeats.filter(record("info is never held %s", logging.INFO))
    clock.now += 31
    again = record("Unable connect to %s")
    assert repeats.filter(again) and again.suppressed == 50
