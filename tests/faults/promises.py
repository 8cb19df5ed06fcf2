"""What must hold after every fault (CONTRACT.md, "Resilience"; issue 14, item 8).

A test module subclasses :class:`AfterAFault` as ``Test...`` and provides a ``run`` fixture (a
:class:`FaultRun`); the tests below then run for its fault, next to the module's own.
"""

from __future__ import annotations

from tests.e2e.conftest import PROCESSES, Services
from tests.faults.durability import in_analytics, in_services, live_and_replayed, on_topic, still_missing, writes_of
from tests.faults.load import Outcome
from tests.faults.scenario import BEFORE, FaultRun
from tests.faults.topic import DLQ_TOPIC, headers_of, read_to_end

SHOWN = 10  # failures listed in a message; the rest are counted


def listed(items: list, total_of: str = "") -> str:
    more = f"\n... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{len(items)} {total_of}:\n" + "\n".join(str(item) for item in items[:SHOWN]) + more


def missing_listed(missing: dict, of: int) -> str:
    return listed([f"{write}: {why}" for write, why in missing.items()], f"of {of} acknowledged writes missing")


class AfterAFault:
    def unanswered_allowed(self, run: FaultRun, outcome: Outcome) -> bool:
        """A request may go without an answer only when its process was not there to answer (a kill)."""
        return False

    def test_the_pipeline_recovers_in_time(self, run: FaultRun) -> None:
        """A lead is captured, published, claimed, followed up and shown in analytics within the target."""
        recovery = run.recovery
        seconds = recovery.pipeline.seconds
        assert seconds is not None and seconds <= recovery.target, recovery.line()

    def test_the_streams_worker_counts_again_in_time(self, run: FaultRun) -> None:
        recovery = run.recovery
        seconds = recovery.streams.seconds
        before = f"before the fault, after {BEFORE} requests, its /activity/ counted {run.counted_before} events"
        assert seconds is not None and seconds <= recovery.target, f"{recovery.line()}; {before}"

    def test_every_request_gets_an_answer(self, run: FaultRun) -> None:
        """Never a hang (no answer within the client's 5 s) nor a dropped connection, but from a killed process."""
        hung = [o.describe() for o in run.answers() if o.status is None and not self.unanswered_allowed(run, o)]
        assert not hung, listed(hung, f"of {len(run.answers())} requests got no answer")

    def test_no_answer_is_a_5xx_other_than_503_problem_with_retry_after(self, run: FaultRun) -> None:
        wrong = [
            f"{o.describe()} (content-type {o.content_type!r}, Retry-After {o.retry_after!r})"
            for o in run.answers()
            if o.status is not None
            and o.status >= 500
            and not (o.status == 503 and o.content_type.startswith("application/problem+json") and o.retry_after)
        ]
        assert not wrong, listed(wrong, f"of {len(run.answers())} answers wrong")

    def test_every_process_is_ready_again(self, run: FaultRun) -> None:
        last = {name: run.readiness.of(name)[-1] for name in PROCESSES}
        unready = [f"{name}: {run.readiness.summary(name, run.struck_at)}" for name, r in last.items() if r.status != 200]
        assert not unready, "readiness at the end, since the fault:\n" + "\n".join(unready)

    def test_a_process_that_has_not_recovered_says_so(self, run: FaultRun) -> None:
        """/readyz answers 503 while its process cannot do its work (a worker crash-looping or stalled)."""
        lying = [
            f"{name} answered {run.readiness.of(name)[-1].status} at the end, though the probe was stuck there "
            f"({run.recovery.line()}); since the fault: {run.readiness.summary(name, run.struck_at)}"
            for name in run.recovery.stuck_processes
            if name in PROCESSES and PROCESSES[name].ready == "/readyz" and run.readiness.of(name)[-1].status != 503
        ]
        assert not lying, "\n".join(lying)

    async def test_acknowledged_writes_are_in_their_service(self, run: FaultRun, system: Services) -> None:
        writes = writes_of(run.load.acknowledged)
        missing = await still_missing(writes, in_services(system), run.settled_by)
        assert not missing, missing_listed(missing, len(writes))

    async def test_acknowledged_writes_are_on_the_topic(self, run: FaultRun, system: Services) -> None:
        writes = writes_of(run.load.acknowledged)
        missing = await still_missing(writes, on_topic(system), run.settled_by)
        assert not missing, missing_listed(missing, len(writes))

    async def test_acknowledged_writes_are_in_analytics(self, run: FaultRun, system: Services) -> None:
        writes = writes_of(run.load.acknowledged)
        missing = await still_missing(writes, in_analytics(system), run.settled_by)
        assert not missing, missing_listed(missing, len(writes))

    async def test_analytics_equals_a_fresh_replay_of_the_topic(self, run: FaultRun, system: Services) -> None:
        compared = await live_and_replayed(system, run.settled_by)
        assert compared.behind is None, compared.behind
        differing = {
            table: (len(compared.live[table]), len(compared.replayed[table]))
            for table in compared.live
            if compared.live[table] != compared.replayed[table]
        }
        assert not differing, f"tables whose rows differ (live rows, replayed rows): {differing}"

    async def test_no_valid_event_was_dead_lettered(self, run: FaultRun, system: Services) -> None:
        topic = system.env["LEADFLOW_TOPIC"]
        parked = await read_to_end(system.env["LEADFLOW_KAFKA_BOOTSTRAP"], DLQ_TOPIC) or []
        allowed = run.poison
        wrong = [
            headers
            for record, headers in ((record, headers_of(record)) for record in parked)
            if headers.get("dlq-topic") == topic
            and (int(headers.get("dlq-partition", -1)), int(headers.get("dlq-offset", -1))) not in allowed
            and not (headers.get("dlq-reason") == "unknown-lead" and (record.key or b"").decode() in run.stray_leads)
        ]
        assert not wrong, listed(wrong, "records of the topic parked that were not poison")
