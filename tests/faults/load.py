"""A small, bounded mixed load over HTTP: captures, batch captures, claims and follow-ups, as reps and
an integration would send them, recording every answer (or its absence) and what was acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.conftest import Services, auth

# Longer than any answer the contract allows (an outage fails fast, a consistency wait is at most 2 s):
# a request without an answer by then hangs.
CLIENT_TIMEOUT = 5.0
BATCH_SIZE = 5
# Each op is one request; the cycle sets the mix. An op that has nothing to act on yet (no lead to
# claim, none claimed to follow up) captures instead.
MIX = ("capture", "claim", "follow_up", "capture", "batch", "claim", "follow_up", "claim", "follow_up", "capture")
ATTEMPTS = 3  # a claim or follow-up refused for now (not seen yet, outage) is tried again later, this often
PROCESS_OF = {"capture": "intake", "batch": "intake", "claim": "assignment", "follow_up": "followup"}
# Every lead of a run has a phone of its own (the phone is a lead's identity: a repeat would be a 409).
_PHONES = itertools.count(uuid.uuid4().int % 10**7 * 8)


LEAD = {"name": "故障演练", "source": "web_form", "region": "华东", "industry": "制造"}


def new_lead() -> dict[str, Any]:
    """A valid capture body with a phone no other lead of this run has."""
    return {**LEAD, "phone": f"139{next(_PHONES):08d}"}


@dataclass(frozen=True)
class Outcome:
    """One request and what came of it."""

    op: str
    process: str
    started: float  # time.monotonic()
    seconds: float
    status: int | None  # None: no answer
    error: str | None = None  # why there was no answer
    content_type: str = ""
    retry_after: str | None = None
    problem_type: str | None = None

    @property
    def ended(self) -> float:
        return self.started + self.seconds

    def describe(self) -> str:
        answer = f"{self.status} {self.problem_type or ''}".strip() if self.status else f"no answer ({self.error})"
        return f"{self.op} → {self.process}: {answer} after {self.seconds:.2f}s"


@dataclass
class Acknowledged:
    """Writes a service answered 2xx: each must survive any fault."""

    captures: list[str] = field(default_factory=list)  # lead ids
    claims: dict[str, str] = field(default_factory=dict)  # lead id → rep
    follow_ups: dict[str, str] = field(default_factory=dict)  # follow-up id → lead id

    def count(self) -> str:
        return f"{len(self.captures)} captures, {len(self.claims)} claims, {len(self.follow_ups)} follow-ups"


class MixedLoad:
    """Sends ``rate`` requests a second (open loop, at most ``in_flight`` at once) until stopped or
    ``limit`` requests were sent."""

    def __init__(self, services: Services, *, limit: int, rate: float = 20.0, in_flight: int = 24, reps: int = 20) -> None:
        self.services = services
        self.limit = limit
        self.rate = rate
        self.slots = asyncio.Semaphore(in_flight)
        tag = uuid.uuid4().hex[:6]
        self.reps = [f"rep-{tag}-{n}" for n in range(reps)]
        self.headers = {rep: auth("rep", rep) for rep in self.reps}
        self.integration = auth("integration", f"crm-{tag}")
        self.outcomes: list[Outcome] = []
        self.acknowledged = Acknowledged()
        self.claimable: deque[tuple[str, int]] = deque()  # (lead id, attempts so far)
        self.followable: deque[tuple[str, str, int]] = deque()  # (lead id, rep, attempts so far)
        self._reps = itertools.cycle(self.reps)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Send no more; wait for the answers of what was sent."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def sent(self, count: int) -> None:
        """Wait until ``count`` more requests have been answered (or given up on), or the load is done."""
        target = len(self.outcomes) + count
        while len(self.outcomes) < target and not (self._task is not None and self._task.done()):
            await asyncio.sleep(0.05)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as client:
            pending: set[asyncio.Task[None]] = set()
            next_at = time.monotonic()
            for op in itertools.islice(itertools.cycle(MIX), self.limit):
                if self._stop.is_set():
                    break
                await self.slots.acquire()
                next_at = max(next_at, time.monotonic())  # a wait for a free slot is not made up for in a burst
                task = asyncio.create_task(self._send(self._request_for(client, op)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += 1 / self.rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*pending)

    def _request_for(self, client: httpx.AsyncClient, op: str) -> Coroutine[Any, Any, None]:
        if op == "follow_up" and self.followable:
            return self._follow_up(client, *self.followable.popleft())
        if op in ("claim", "follow_up") and self.claimable:
            return self._claim(client, *self.claimable.popleft())
        return self._batch(client) if op == "batch" else self._capture(client)

    async def _send(self, request: Coroutine[Any, Any, None]) -> None:
        try:
            await request
        finally:
            self.slots.release()

    async def _request(self, client: httpx.AsyncClient, op: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        process = PROCESS_OF[op]
        started = time.monotonic()
        try:
            response = await client.request(method, self.services.url(process) + path, **kwargs)
        except httpx.HTTPError as exc:
            error = "timeout" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
            self.outcomes.append(Outcome(op, process, started, time.monotonic() - started, None, error))
            return None
        content_type = response.headers.get("content-type", "")
        problem = None
        if content_type.startswith("application/problem+json"):
            with contextlib.suppress(ValueError, AttributeError):  # a problem that is not one is seen in its status
                problem = response.json().get("type")
        outcome = Outcome(
            op,
            process,
            started,
            time.monotonic() - started,
            response.status_code,
            content_type=content_type,
            retry_after=response.headers.get("retry-after"),
            problem_type=problem,
        )
        self.outcomes.append(outcome)
        return response

    async def _capture(self, client: httpx.AsyncClient) -> None:
        response = await self._request(client, "capture", "POST", "/leads", json=new_lead(), headers=self.integration)
        if response is not None and response.status_code == 201:
            self._captured(response.json()["lead_id"])

    async def _batch(self, client: httpx.AsyncClient) -> None:
        leads = [new_lead() for _ in range(BATCH_SIZE)]
        response = await self._request(client, "batch", "POST", "/leads/batch", json=leads, headers=self.integration)
        if response is not None and response.status_code == 200:
            for item in response.json():
                if item["status"] == "created":
                    self._captured(item["lead_id"])

    def _captured(self, lead_id: str) -> None:
        self.acknowledged.captures.append(lead_id)
        self.claimable.append((lead_id, 0))

    async def _claim(self, client: httpx.AsyncClient, lead_id: str, attempts: int) -> None:
        rep = next(self._reps)
        response = await self._request(client, "claim", "POST", f"/leads/{lead_id}/claim", headers=self.headers[rep])
        if response is not None and response.status_code == 200:
            self.acknowledged.claims[lead_id] = rep
            self.followable.append((lead_id, rep, 0))
        elif attempts + 1 < ATTEMPTS and (response is None or response.status_code in (404, 409, 503)):
            self.claimable.append((lead_id, attempts + 1))

    async def _follow_up(self, client: httpx.AsyncClient, lead_id: str, rep: str, attempts: int) -> None:
        body = {"channel": "phone", "summary": "电话回访，确认需求", "stage": "contacted"}
        path = f"/leads/{lead_id}/follow-ups"
        response = await self._request(client, "follow_up", "POST", path, json=body, headers=self.headers[rep])
        if response is not None and response.status_code == 201:
            self.acknowledged.follow_ups[response.json()["follow_up_id"]] = lead_id
        elif attempts + 1 < ATTEMPTS and (response is None or response.status_code in (404, 409, 503)):
            self.followable.append((lead_id, rep, attempts + 1))
