"""kill -9 of each LeadFlow process during a mixed load, restarted at once: it is back and everything
flows again within 10 s, and nothing acknowledged is lost."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import PROCESSES, Services
from tests.faults.load import Outcome
from tests.faults.promises import AfterAFault
from tests.faults.recovery import Recovery
from tests.faults.scenario import FaultRun, kill_and_restart, run_fault

pytestmark = pytest.mark.faults
TARGET = 10.0  # seconds from the kill until everything works again
GIVE_UP = 15.0  # ... after which the probe stops trying (and says how far it got)
# A request in flight when its process was killed, or sent while it restarted, gets no answer; one sent
# this long after it said ready again must be answered.
SETTLE = 1.0


@pytest.fixture(scope="module", params=list(PROCESSES))
async def run(request: pytest.FixtureRequest, system: Services) -> FaultRun:
    name = request.param
    recovery = Recovery(f"kill -9 {name}", TARGET, "the kill (restarted at once)", None)
    return await run_fault(system, recovery, kill_and_restart(system, name), GIVE_UP, killed=name)


class TestKill9OfEachProcess(AfterAFault):
    def unanswered_allowed(self, run: FaultRun, outcome: Outcome) -> bool:
        if outcome.process != run.killed or outcome.error == "timeout":
            return False
        back = [r.at for r in run.readiness.of(outcome.process, run.struck_at) if r.status == 200]
        return run.struck_at <= outcome.ended and outcome.started <= (back[0] if back else float("inf")) + SETTLE
