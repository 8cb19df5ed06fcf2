"""Has the system recovered, and how long did it take? A probe lead is taken through every process,
each step retried until it works or time is up, and timed from the moment the fault was cleared."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from tests.e2e.conftest import Services, auth
from tests.faults.load import CLIENT_TIMEOUT, new_lead
from tests.faults.topic import end_offsets

# Each step, and the process that has not recovered while the step cannot be done.
STEPS = {
    "ready": "",  # every process answers its ready page 200 (the processes still unready are named)
    "streams answering": "analytics-streams",  # its counts page, for the count before the probe
    "topic readable": "kafka",  # the probe's own consumer, for the end offsets before the probe
    "captured": "intake",
    "published": "intake-relay",
    "claimed": "assignment",
    "followed up": "followup",
    "in analytics": "analytics",
    "counted by streams": "analytics-streams",
}
RETRY_PAUSE = 0.1


@dataclass
class Recovery:
    fault: str
    target: float  # seconds the contract allows
    cleared_by: str  # what "cleared" means for this fault, for the report
    outage: float | None  # seconds from the fault to its clearing, when it lasted
    done: dict[str, float] = field(default_factory=dict)  # step → seconds after the fault was cleared
    stuck_at: str | None = None
    not_ready: list[str] = field(default_factory=list)
    last_failure: str = ""  # of the step being tried: the answer or error that was not yet good enough

    @property
    def seconds(self) -> float | None:
        return None if self.stuck_at else self.done["counted by streams"]

    @property
    def stuck_process(self) -> list[str]:
        """The processes that had not recovered when the probe gave up."""
        if self.stuck_at is None:
            return []
        return self.not_ready if self.stuck_at == "ready" else [STEPS[self.stuck_at]]

    def line(self) -> str:
        outage = f"outage {self.outage:.1f}s, " if self.outage is not None else ""
        steps = ", ".join(f"{step} {at:.1f}s" for step, at in self.done.items())
        if self.seconds is None:
            stuck = f"'{self.stuck_at}' ({', '.join(self.stuck_process)}; last: {self.last_failure})"
            verdict = f"NOT recovered: stuck at {stuck}"
        else:
            verdict = f"recovered in {self.seconds:.1f}s"
        return f"{self.fault}: {outage}{verdict} after {self.cleared_by} (target ≤ {self.target:.0f}s); {steps}"


class Probe:
    """Captures a lead, sees it published, claims it, follows it up, finds it in analytics and counted by
    the streams worker; each step as soon as the one before it is done."""

    def __init__(self, services: Services, recovery: Recovery, cleared_at: float, give_up_after: float) -> None:
        self.services = services
        self.recovery = recovery
        self.cleared_at = cleared_at
        self.deadline = cleared_at + give_up_after
        self.rep = f"rep-probe-{uuid.uuid4().hex[:6]}"
        self.client = httpx.AsyncClient(timeout=CLIENT_TIMEOUT)

    async def run(self) -> Recovery:
        try:
            async with self.client:
                await self._steps()
        except TimeoutError:
            pass
        return self.recovery

    async def _step(self, name: str, attempt: Callable[[], Awaitable[object]]) -> object:
        while True:
            try:
                result = await attempt()
            except (httpx.HTTPError, KafkaError, OSError, KeyError, ValueError) as exc:  # not up yet, or not as it will be
                self.recovery.last_failure = repr(exc)
                result = None
            if result:
                self.recovery.done[name] = time.monotonic() - self.cleared_at
                self.recovery.last_failure = ""
                return result
            if time.monotonic() > self.deadline:
                self.recovery.stuck_at = name
                raise TimeoutError(name)
            await asyncio.sleep(RETRY_PAUSE)

    async def _steps(self) -> None:
        await self._step("ready", self._all_ready)
        counted_before = await self._step("streams answering", self._streams_count)
        ends = await self._step("topic readable", self._topic_ends)
        lead_id = await self._step("captured", self._capture)
        await self._step("published", lambda: self._published(lead_id, ends))
        await self._step("claimed", lambda: self._claim(lead_id))
        follow_up_id = await self._step("followed up", lambda: self._follow_up(lead_id))
        await self._step("in analytics", lambda: self._in_analytics(lead_id, follow_up_id))
        await self._step("counted by streams", lambda: self._counted_since(counted_before))

    def _answer(self, response: httpx.Response, wanted: int) -> bool:
        if response.status_code != wanted:
            self.recovery.last_failure = f"{response.status_code} {response.text[:200]}"
        return response.status_code == wanted

    async def _all_ready(self) -> bool:
        answers = await asyncio.gather(
            *(self.client.get(self.services.ready_url(name)) for name in self.services.ports), return_exceptions=True
        )
        unready = {
            name: answer.status_code if isinstance(answer, httpx.Response) else type(answer).__name__
            for name, answer in zip(self.services.ports, answers, strict=True)
            if not isinstance(answer, httpx.Response) or answer.status_code != 200
        }
        self.recovery.not_ready = list(unready)
        self.recovery.last_failure = ", ".join(f"{name} {answer}" for name, answer in unready.items())
        return not unready

    async def _streams_count(self) -> list[int] | None:
        response = await self.client.get(self.services.url("analytics-streams") + "/activity/")
        if not self._answer(response, 200):
            return None
        # Wrapped so that a count of 0 is a result, not a failed attempt.
        return [sum(count for windows in response.json()["activity"].values() for count in windows.values())]

    async def _counted_since(self, before: list[int]) -> bool:
        now = await self._streams_count()
        if now and now[0] <= before[0]:
            self.recovery.last_failure = f"activity count still {now[0]} (was {before[0]})"
        return bool(now and now[0] > before[0])

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.services.env["LEADFLOW_KAFKA_BOOTSTRAP"], enable_auto_commit=False)

    async def _topic_ends(self) -> dict[TopicPartition, int]:
        ends = end_offsets(self.services.env["LEADFLOW_KAFKA_BOOTSTRAP"], self.services.env["LEADFLOW_TOPIC"])
        return await asyncio.wait_for(ends, CLIENT_TIMEOUT)

    async def _capture(self) -> str | None:
        response = await self.client.post(
            self.services.url("intake") + "/leads", json=new_lead(), headers=auth("integration", "probe")
        )
        return response.json()["lead_id"] if self._answer(response, 201) else None

    async def _published(self, lead_id: str, ends: dict[TopicPartition, int]) -> bool:
        consumer = self._consumer()
        await asyncio.wait_for(consumer.start(), CLIENT_TIMEOUT)
        try:
            consumer.assign(list(ends))
            for tp, offset in ends.items():
                consumer.seek(tp, offset)
            while time.monotonic() < self.deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    if any(record.key == lead_id.encode() for record in records):
                        return True
            self.recovery.last_failure = "the probe's LeadCaptured is not on the topic"
            return False
        finally:
            await consumer.stop()

    async def _claim(self, lead_id: str) -> bool:
        url = f"{self.services.url('assignment')}/leads/{lead_id}/claim"
        return self._answer(await self.client.post(url, headers=auth("rep", self.rep)), 200)

    async def _follow_up(self, lead_id: str) -> str | None:
        url = f"{self.services.url('followup')}/leads/{lead_id}/follow-ups"
        body = {"channel": "phone", "summary": "恢复探测", "stage": "contacted"}
        response = await self.client.post(url, json=body, headers=auth("rep", self.rep))
        return response.json()["follow_up_id"] if self._answer(response, 201) else None

    async def _in_analytics(self, lead_id: str, follow_up_id: str) -> bool:
        url = f"{self.services.url('analytics')}/customers/{lead_id}"
        response = await self.client.get(url, headers=auth("manager", "mgr-probe"))
        if not self._answer(response, 200):
            return False
        seen = follow_up_id in {f["follow_up_id"] for f in response.json()["follow_ups"]}
        if not seen:
            self.recovery.last_failure = "the 360 view lacks the probe's follow-up"
        return seen


async def measure_recovery(services: Services, recovery: Recovery, cleared_at: float, give_up_after: float) -> Recovery:
    """Fill in ``recovery``: when each step of the probe worked, timed from ``cleared_at``."""
    return await Probe(services, recovery, cleared_at, give_up_after).run()
