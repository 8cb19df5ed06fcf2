"""Has the system recovered, and how long did it take? A probe lead is taken through every process,
each step retried until it works or time is up, and timed from the moment the fault was cleared.

Two paths are probed at once: the pipeline (capture → publish → claim → follow-up → customer 360), and
the streams worker counting events again; each has its own time, so that one stuck path does not hide
how long the other took.
"""

from __future__ import annotations

import asyncio
import contextlib
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
PIPELINE = {
    "ready": "",  # every process answers its ready page 200 (the processes still unready are named)
    "topic readable": "kafka",  # the probe's own consumer, for the end offsets before the probe
    "captured": "intake",
    "published": "intake-relay",
    "claimed": "assignment",
    "followed up": "followup",
    "in analytics": "analytics",
}
STREAMS = {
    "streams answering": "analytics-streams",  # its counts page, for the count before the probe
    "counted by streams": "analytics-streams",  # ... which then grows: new events are counted
}
RETRY_PAUSE = 0.1
STREAMS_FEED_INTERVAL = 2.0  # seconds between the leads the probe captures for the streams worker to count
PROBE_CAPTURER = auth("integration", "probe")


@dataclass
class Path:
    """How far one path of the probe got, and when."""

    steps: dict[str, str]
    done: dict[str, float] = field(default_factory=dict)  # step → seconds after the fault was cleared
    stuck_at: str | None = None
    not_ready: list[str] = field(default_factory=list)  # the processes not ready, while stuck at "ready"
    last_failure: str = ""  # of the step being tried: the answer or error that was not yet good enough

    @property
    def seconds(self) -> float | None:
        """When its last step was done."""
        return self.done.get(list(self.steps)[-1])

    @property
    def stuck_processes(self) -> list[str]:
        if self.stuck_at is None:
            return []
        return self.not_ready if self.stuck_at == "ready" else [self.steps[self.stuck_at]]

    def describe(self) -> str:
        if self.seconds is not None:
            verdict = f"{self.seconds:.1f}s"
        else:
            verdict = f"NOT recovered: stuck at '{self.stuck_at}' ({', '.join(self.stuck_processes)}; last: {self.last_failure})"
        steps = ", ".join(f"{step} {at:.1f}s" for step, at in self.done.items())
        return f"{verdict} [{steps}]"


@dataclass
class Recovery:
    fault: str
    target: float  # seconds the contract allows
    cleared_by: str  # what "cleared" means for this fault, for the report
    outage: float | None = None  # seconds from the fault to its clearing, when it lasted
    pipeline: Path = field(default_factory=lambda: Path(PIPELINE))
    streams: Path = field(default_factory=lambda: Path(STREAMS))

    @property
    def stuck_processes(self) -> list[str]:
        """The processes that had not recovered when the probe gave up."""
        return [*self.pipeline.stuck_processes, *self.streams.stuck_processes]

    def line(self) -> str:
        outage = f"outage {self.outage:.1f}s; " if self.outage is not None else ""
        return (
            f"{self.fault}: {outage}after {self.cleared_by} (target ≤ {self.target:.0f}s): "
            f"pipeline {self.pipeline.describe()}; streams worker {self.streams.describe()}"
        )


class Probe:
    def __init__(
        self, services: Services, recovery: Recovery, cleared_at: float, give_up_after: float, streams: bool = True
    ) -> None:
        self.services = services
        self.paths = (self._pipeline, self._streams) if streams else (self._pipeline,)
        self.recovery = recovery
        self.cleared_at = cleared_at
        self.deadline = cleared_at + give_up_after
        self.rep = f"rep-probe-{uuid.uuid4().hex[:6]}"
        self.lead_id = self.follow_up_id = ""  # the probe lead's, once captured and followed up
        self._fed_at = time.monotonic()
        self.client = httpx.AsyncClient(timeout=CLIENT_TIMEOUT)

    async def run(self) -> Recovery:
        async with self.client:
            ended = await asyncio.gather(*(path() for path in self.paths), return_exceptions=True)
        for outcome in ended:
            if isinstance(outcome, BaseException) and not isinstance(outcome, TimeoutError):  # stuck: its path says where
                raise outcome
        return self.recovery

    async def _step(self, path: Path, name: str, attempt: Callable[[], Awaitable[object]]) -> object:
        while True:
            try:
                result = await attempt()
            except (httpx.HTTPError, KafkaError, OSError, KeyError, ValueError) as exc:  # not up yet, or not as it will be
                path.last_failure = repr(exc)
                result = None
            if result:
                path.done[name] = time.monotonic() - self.cleared_at
                path.last_failure = ""
                return result
            if time.monotonic() > self.deadline:
                path.stuck_at = name
                raise TimeoutError(name)
            await asyncio.sleep(RETRY_PAUSE)

    async def _pipeline(self) -> None:
        path = self.recovery.pipeline
        await self._step(path, "ready", self._all_ready)
        ends = await self._step(path, "topic readable", self._topic_ends)
        self.lead_id = lead_id = await self._step(path, "captured", self._capture)
        await self._step(path, "published", lambda: self._published(lead_id, ends))
        await self._step(path, "claimed", lambda: self._claim(lead_id))
        self.follow_up_id = follow_up_id = await self._step(path, "followed up", lambda: self._follow_up(lead_id))
        await self._step(path, "in analytics", lambda: self._in_analytics(lead_id, follow_up_id))

    async def _streams(self) -> None:
        path = self.recovery.streams
        before = await self._step(path, "streams answering", self._streams_count)
        await self._step(path, "counted by streams", lambda: self._counted_since(before))

    def _answer(self, response: httpx.Response, wanted: int, path: Path | None = None) -> bool:
        if response.status_code != wanted:
            (path or self.recovery.pipeline).last_failure = f"{response.status_code} {response.text[:200]}"
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
        path = self.recovery.pipeline
        path.not_ready = list(unready)
        path.last_failure = ", ".join(f"{name} {answer}" for name, answer in unready.items())
        return not unready

    async def _streams_count(self) -> list[int] | None:
        response = await self.client.get(self.services.url("analytics-streams") + "/activity/")
        if not self._answer(response, 200, self.recovery.streams):
            return None
        return [counted(response)]  # in a list, so that a count of 0 is a result, not a failed attempt

    async def _counted_since(self, before: list[int]) -> bool:
        now = await self._streams_count()
        if now and now[0] > before[0]:
            return True
        if now:
            self.recovery.streams.last_failure = f"activity count still {now[0]}"
        # The pipeline's and the load's events may all be counted already, or be over: give it new ones.
        if time.monotonic() - self._fed_at > STREAMS_FEED_INTERVAL:
            self._fed_at = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                await self.client.post(self.services.url("intake") + "/leads", json=new_lead(), headers=PROBE_CAPTURER)
        return False

    async def _topic_ends(self) -> dict[TopicPartition, int]:
        ends = end_offsets(self.services.env["LEADFLOW_KAFKA_BOOTSTRAP"], self.services.env["LEADFLOW_TOPIC"])
        return await asyncio.wait_for(ends, CLIENT_TIMEOUT)

    async def _capture(self) -> str | None:
        response = await self.client.post(self.services.url("intake") + "/leads", json=new_lead(), headers=PROBE_CAPTURER)
        return response.json()["lead_id"] if self._answer(response, 201) else None

    async def _published(self, lead_id: str, ends: dict[TopicPartition, int]) -> bool:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.services.env["LEADFLOW_KAFKA_BOOTSTRAP"], enable_auto_commit=False)
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
            self.recovery.pipeline.last_failure = "the probe's LeadCaptured is not on the topic"
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
            self.recovery.pipeline.last_failure = "the 360 view lacks the probe's follow-up"
        return seen


def counted(activity: httpx.Response) -> int:
    """All events the streams worker's activity page counts, over every type and window it holds."""
    return sum(count for windows in activity.json()["activity"].values() for count in windows.values())


async def streams_count(services: Services) -> int | None:
    """What the streams worker counts now; None if it does not answer."""
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        try:
            response = await client.get(services.url("analytics-streams") + "/activity/")
        except httpx.HTTPError:
            return None
    return counted(response) if response.status_code == 200 else None


async def measure_recovery(services: Services, recovery: Recovery, cleared_at: float, give_up_after: float) -> Recovery:
    """Fill in ``recovery``: when each step of the probe worked, timed from ``cleared_at``."""
    return await Probe(services, recovery, cleared_at, give_up_after).run()
