"""Nothing acknowledged is lost, and analytics' tables are what a replay of the topic makes of it.

Each check answers with what is still missing, and where, waiting for stragglers until the run's
deadline: after a fault the system has to catch up before it can show everything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from services.analytics.catalog import Catalog
from services.analytics.config import AnalyticsSettings
from services.analytics.projections import REGISTRY
from services.analytics.replay import replay
from tests.e2e.conftest import Services, auth
from tests.faults.load import CLIENT_TIMEOUT, Acknowledged
from tests.faults.topic import end_offsets, read_to_end, value_of
from tests.integration.test_analytics_replay import dump

MANAGER = auth("manager", "mgr-faults")
REPLAY_TIMEOUT = 60.0  # a few thousand events replay in a few seconds


@dataclass(frozen=True)
class Write:
    kind: str  # capture | claim | follow_up
    lead_id: str
    detail: str = ""  # the rep of a claim, the id of a follow-up

    def __str__(self) -> str:
        return f"{self.kind} {self.lead_id}" + (f" ({self.detail})" if self.detail else "")


def writes_of(acknowledged: Acknowledged) -> list[Write]:
    return [
        *(Write("capture", lead) for lead in acknowledged.captures),
        *(Write("claim", lead, rep) for lead, rep in acknowledged.claims.items()),
        *(Write("follow_up", lead, follow_up) for follow_up, lead in acknowledged.follow_ups.items()),
    ]


# Given the writes still unseen, answers those of them still missing, each with what was found instead.
Check = Callable[[list[Write]], Awaitable[dict[Write, str]]]


async def still_missing(writes: list[Write], check: Check, deadline: float) -> dict[Write, str]:
    """What ``check`` still misses of ``writes``, asked again until ``deadline`` (time.monotonic())."""
    missing = await check(writes)
    while missing and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        missing = await check(list(missing))
    return missing


def in_services(services: Services) -> Check:
    """Each write as the service that acknowledged it shows it: intake's lead, assignment's owner, followup's timeline."""

    async def check(writes: list[Write]) -> dict[Write, str]:
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
            return await _each(writes, lambda write: _in_its_service(client, services, write))

    return check


async def _in_its_service(client: httpx.AsyncClient, services: Services, write: Write) -> str | None:
    if write.kind == "capture":
        response = await client.get(f"{services.url('intake')}/leads/{write.lead_id}", headers=MANAGER)
        return None if response.status_code == 200 else f"intake answered {response.status_code}"
    if write.kind == "claim":
        response = await client.get(f"{services.url('assignment')}/leads/{write.lead_id}/ownership", headers=MANAGER)
        if response.status_code != 200:
            return f"assignment answered {response.status_code}"
        owner = response.json()["owner"]
        return None if owner == write.detail else f"assignment says the owner is {owner}"
    response = await client.get(f"{services.url('followup')}/leads/{write.lead_id}/follow-ups", headers=MANAGER)
    if response.status_code != 200:
        return f"followup answered {response.status_code}"
    logged = {f["follow_up_id"] for f in response.json()["follow_ups"]}
    return None if write.detail in logged else f"not in followup's timeline ({len(logged)} others)"


def in_analytics(services: Services) -> Check:
    """Each write in analytics' customer 360 view of its lead."""

    async def check(writes: list[Write]) -> dict[Write, str]:
        by_lead: dict[str, list[Write]] = {}
        for write in writes:
            by_lead.setdefault(write.lead_id, []).append(write)
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
            found = await _each(list(by_lead), lambda lead: _customer(client, services, lead))
        missing: dict[Write, str] = {}
        for lead, lead_writes in by_lead.items():
            view = found.get(lead)
            for write in lead_writes:
                if isinstance(view, str):
                    missing[write] = view
                elif write.kind == "claim" and write.detail not in {o["rep_id"] for o in view["ownership_history"]}:
                    missing[write] = f"not in the 360 view's ownership history {view['ownership_history']}"
                elif write.kind == "follow_up" and write.detail not in {f["follow_up_id"] for f in view["follow_ups"]}:
                    missing[write] = "not among the 360 view's follow-ups"
        return missing

    return check


async def _customer(client: httpx.AsyncClient, services: Services, lead_id: str) -> str | dict:
    """The 360 view, or why there is none (a str, as ``_each`` reports anything but None)."""
    response = await client.get(f"{services.url('analytics')}/customers/{lead_id}", headers=MANAGER)
    return response.json() if response.status_code == 200 else f"analytics answered {response.status_code}"


async def _each(items: list, ask: Callable[[object], Awaitable[object]]) -> dict:
    """``ask`` about every item (a few at a time); the items it answered anything but None about."""
    slots = asyncio.Semaphore(16)

    async def one(item: object) -> object:
        async with slots:
            try:
                return await ask(item)
            except httpx.HTTPError as exc:
                return f"no answer ({type(exc).__name__})"

    answers = await asyncio.gather(*(one(item) for item in items))
    return {item: answer for item, answer in zip(items, answers, strict=True) if answer is not None}


def on_topic(services: Services) -> Check:
    """Each write published: LeadCaptured / LeadClaimed (by the rep) / FollowUpLogged with its lead as subject."""

    async def check(writes: list[Write]) -> dict[Write, str]:
        records = await read_to_end(services.env["LEADFLOW_KAFKA_BOOTSTRAP"], services.env["LEADFLOW_TOPIC"]) or []
        published: set[Write] = set()
        for record in records:
            event = value_of(record)
            if event is None or not isinstance(event.get("data"), dict):
                continue
            data, lead = event["data"], event.get("subject")
            if event.get("type") == "LeadCaptured":
                published.add(Write("capture", lead))
            elif event.get("type") == "LeadClaimed":
                published.add(Write("claim", lead, data.get("rep_id")))
            elif event.get("type") == "FollowUpLogged":
                published.add(Write("follow_up", lead, data.get("follow_up_id")))
        return {write: "not on the topic" for write in writes if write not in published}

    return check


def analytics_settings(services: Services) -> AnalyticsSettings:
    return AnalyticsSettings(
        kafka_bootstrap=services.env["LEADFLOW_KAFKA_BOOTSTRAP"],
        database_url=services.env["LEADFLOW_DATABASE_URL"],
        topic=services.env["LEADFLOW_TOPIC"],
        consumer_group_prefix=services.env["LEADFLOW_CONSUMER_GROUP_PREFIX"],
        db_pool_size=2,
    )


async def _ends(settings: AnalyticsSettings) -> dict[int, int]:
    return {tp.partition: end for tp, end in (await end_offsets(settings.kafka_bootstrap, settings.topic)).items()}


def stored_positions(database_url: str, instance: str, topic: str) -> dict[int, int]:
    with psycopg.connect(database_url) as conn:
        query = sql.SQL("SELECT partition, next_offset FROM {} WHERE topic = %s").format(sql.Identifier(instance, "positions"))
        return dict(conn.execute(query, (topic,)).fetchall())


@dataclass
class Comparison:
    live: dict[str, list[str]]
    replayed: dict[str, list[str]]
    behind: str | None  # why the live tables could not be compared (they never caught up with the topic)


async def live_and_replayed(services: Services, deadline: float) -> Comparison:
    """analytics' serving tables and those of a fresh replay of the whole topic, both once they have read all of it
    (the live ones by ``deadline``, or they are reported behind)."""
    settings = analytics_settings(services)
    with ConnectionPool(settings.database_url, min_size=1, max_size=2) as pool:
        catalog = Catalog(pool, settings.analytics_schema)
        (live,) = catalog.serving_instances()  # one, unless a replay was promoted
        while True:
            ends = await _ends(settings)
            stored = stored_positions(settings.database_url, live.name, settings.topic)
            if all(stored.get(p, 0) >= end for p, end in ends.items()):
                fresh = catalog.create_instance(REGISTRY)
                replayed = replay(settings, catalog, fresh, promote=False, follow=False, batch=5000)
                try:
                    await asyncio.wait_for(replayed, REPLAY_TIMEOUT)
                except TimeoutError:
                    return Comparison({}, {}, f"a replay of the topic did not finish in {REPLAY_TIMEOUT:.0f}s")
                compared = Comparison(dump(settings.database_url, live.name), dump(settings.database_url, fresh.name), None)
                # A straggler published meanwhile (a relay's last retry) would be in one dump and not the other.
                if await _ends(settings) == ends or time.monotonic() > deadline:
                    return compared
            elif time.monotonic() > deadline:
                behind = f"analytics stored positions {stored}, the topic ends at {ends}"
                return Comparison({}, {}, behind)
            await asyncio.sleep(0.5)
