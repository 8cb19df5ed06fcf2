"""Kafka SIGKILLed mid-load, restarted a few seconds later: the processes that need it say so on /readyz,
clients are answered throughout, and everything flows again within 30 s of the broker's return."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Services
from tests.faults.promises import AfterAFault
from tests.faults.recovery import Recovery
from tests.faults.scenario import FaultRun, kill_server, run_fault
from tests.faults.stack import PrivateStack

pytestmark = pytest.mark.faults
TARGET = 30.0  # seconds from the broker's return until everything works again
GIVE_UP = 45.0  # ... after which the probe stops trying (and says how far it got)
# intake's API records captures without the broker (its relay publishes them later), so it can work on.
NEED_KAFKA = ("intake-relay", "assignment", "followup", "analytics")


@pytest.fixture(scope="module")
async def run(system: Services, stack: PrivateStack) -> FaultRun:
    recovery = Recovery("SIGKILL of Kafka", TARGET, "the broker's restart", None)
    return await run_fault(system, recovery, kill_server(stack.kill_kafka, stack.up), GIVE_UP)


class TestKafkaKilledMidLoad(AfterAFault):
    def test_readyz_said_503_while_kafka_was_down(self, run: FaultRun) -> None:
        silent = [
            f"{name}: {run.readiness.summary(name, run.struck_at, run.cleared_at)}"
            for name in NEED_KAFKA
            if not any(r.status == 503 for r in run.readiness.of(name, run.struck_at, run.cleared_at))
        ]
        assert not silent, "readiness while Kafka was down never said 503:\n" + "\n".join(silent)
