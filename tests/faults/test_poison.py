"""Poison produced straight onto the topic mid-load: every consumer that cannot apply a record parks it on
``leadflow.lead-events.dlq`` (the original record, ``dlq-*`` headers, counted) and goes on; nothing
poisoned reaches a read model, an event repeated by id has one effect, and everything else keeps flowing."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.analytics.synthetic import History
from shared.events import Envelope, encode, kafka_headers
from tests.e2e.conftest import Services, auth
from tests.faults.durability import MANAGER, Write, in_analytics, still_missing
from tests.faults.load import CLIENT_TIMEOUT, LEAD, new_lead
from tests.faults.promises import AfterAFault, listed
from tests.faults.recovery import Probe, Recovery
from tests.faults.scenario import CATCH_UP, FaultRun, all_ready, run_fault
from tests.faults.topic import DLQ_TOPIC, headers_of, partitions_of, produce, read_to_end

pytestmark = pytest.mark.faults
TARGET = 10.0  # a consumer parks what it cannot apply and goes on: there is nothing else to recover from
GIVE_UP = 15.0
CONSUMERS = ("assignment", "followup", "analytics")  # the services that consume the topic
DLQ_HEADERS = ("dlq-service", "dlq-worker", "dlq-topic", "dlq-partition", "dlq-offset", "dlq-error", "dlq-attempts", "dlq-time")
NUL_REP = "eco\x00rep"  # the rep id that stopped three consumers for good (issue 14)


@pytest.fixture(scope="module")
def topic() -> str:
    """The contract's topic (the private stack made it), so that the dead-letter topic is the contract's
    ``leadflow.lead-events.dlq`` whether a service names it after its topic or not."""
    return "leadflow.lead-events"


@dataclass
class Poison:
    """A record produced as it is, and the consumers that must park it."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    parked_by: tuple[str, ...]
    lead_id: str
    partition: int = -1
    offset: int = -1


def changed(envelope: Envelope, parked_by: tuple[str, ...], attributes: dict | None = None, **data: object) -> Poison:
    """``envelope`` as raw JSON, some of its attributes and data changed."""
    value = {**orjson.loads(encode(envelope)), **(attributes or {})}
    value["data"] = {**value["data"], **data}
    headers = [("ce_type", str(value["type"]).encode()), ("ce_id", envelope.id.encode())]
    return Poison(envelope.subject.encode(), orjson.dumps(value), headers, parked_by, envelope.subject)


def as_is(envelope: Envelope, parked_by: tuple[str, ...] = ()) -> Poison:
    return Poison(envelope.subject.encode(), encode(envelope), kafka_headers(envelope), parked_by, envelope.subject)


def the_poison(known_lead: str, unclaimed_lead: str) -> dict[str, Poison]:
    now = datetime.now(UTC)
    stray = str(uuid.uuid4())
    twice = History().capture(now).events[0]
    return {
        # It claims to be an event every consumer reads, so none may pass it by unread.
        "not JSON": Poison(stray.encode(), b"\xffnot json {", [("ce_type", b"LeadCaptured")], CONSUMERS, stray),
        "NUL in a captured name": changed(History().capture(now).events[0], CONSUMERS, name="王\x00五"),
        "NUL in a claim's rep": changed(
            History(unclaimed_lead).claim(now, "rep-x").events[0], ("followup", "analytics"), rep_id=NUL_REP
        ),
        # analytics reads every type (a 360 view keeps the lead's whole history); a service that
        # filters by type may pass one by that it does not read.
        "unknown type": changed(History().claim(now, "rep-x").events[0], ("analytics",), {"type": "LeadTeleported"}),
        # followup opens a lead's file from a claim, by design; analytics has no lead to show it in.
        "event for an unknown lead": as_is(History().claim(now, "rep-x").events[0], ("analytics",)),
        # Not poison: a record delivered twice, its second copy (same id) differing; one effect only.
        "same id, first copy": as_is(twice),
        "same id, second copy": changed(twice, (), name="第二份"),
        # Valid, but it must not rewrite what is known of the lead (issue 14: it set the stage back to new).
        "second capture of a known lead": as_is(History(known_lead).capture(now, source="referral").events[0]),
    }


@dataclass
class PoisonRun:
    fault: FaultRun
    poison: dict[str, Poison]
    markers: list[str]  # leads captured on every partition right after the poison
    known: Probe  # a lead captured, claimed and followed up before the poison
    unclaimed: str  # a lead captured before the poison, owned by nobody


async def a_lead_taken_through(system: Services) -> Probe:
    """A lead captured, claimed and followed up, and shown so by analytics."""
    probe = Probe(system, Recovery("setting up", TARGET, ""), time.monotonic(), CATCH_UP, streams=False)
    recovery = await probe.run()
    assert recovery.pipeline.seconds is not None, f"before any poison: {recovery.line()}"
    return probe


async def a_lead_nobody_owns(system: Services) -> str:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        response = await client.post(f"{system.url('intake')}/leads", json=new_lead(), headers=auth("integration", "crm"))
    assert response.status_code == 201, response.text
    lead_id = response.json()["lead_id"]
    in_time = time.monotonic() + CATCH_UP
    assert not await still_missing([Write("capture", lead_id)], in_analytics(system), in_time), "before any poison"
    return lead_id


@pytest.fixture(scope="module")
async def poisoned(system: Services, topic: str) -> PoisonRun:
    await all_ready(system)
    known = await a_lead_taken_through(system)
    unclaimed = await a_lead_nobody_owns(system)
    poison = the_poison(known.lead_id, unclaimed)

    # A valid capture after the poison on every partition: a service that shows them all has read past it.
    bootstrap = system.env["LEADFLOW_KAFKA_BOOTSTRAP"]
    markers = [History().capture(datetime.now(UTC)).events[0] for _ in await partitions_of(bootstrap, topic) or ()]

    async def produce_poison() -> tuple[float, float]:
        at = time.monotonic()
        records = [(p.key, p.value, p.headers, None) for p in poison.values()]
        records += [(m.subject.encode(), encode(m), kafka_headers(m), partition) for partition, m in enumerate(markers)]
        sent = await produce(bootstrap, topic, records)
        for record, metadata in zip(poison.values(), sent[: len(poison)], strict=True):
            record.partition, record.offset = metadata.partition, metadata.offset
        return at, at

    recovery = Recovery("poison on the topic", TARGET, "the poison was produced", None)
    run = await run_fault(system, recovery, produce_poison, GIVE_UP)
    run.poison = {(p.partition, p.offset) for p in poison.values()}
    run.stray_leads = {poison["event for an unknown lead"].lead_id}
    return PoisonRun(run, poison, [m.subject for m in markers], known, unclaimed)


@pytest.fixture(scope="module")
def run(poisoned: PoisonRun) -> FaultRun:
    return poisoned.fault


async def parked_records(system: Services) -> list | None:
    """The dead letters of this topic's records; None if there is no dead-letter topic."""
    records = await read_to_end(system.env["LEADFLOW_KAFKA_BOOTSTRAP"], DLQ_TOPIC)
    if records is None:
        return None
    return [r for r in records if headers_of(r).get("dlq-topic") == system.env["LEADFLOW_TOPIC"]]


def position_of(record) -> tuple[int, int]:
    headers = headers_of(record)
    return int(headers.get("dlq-partition", -1)), int(headers.get("dlq-offset", -1))


async def get(system: Services, process: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        return await client.get(system.url(process) + path, headers=MANAGER)


# Where each consumer shows a lead it has read the capture of.
LEAD_PAGE = {"assignment": "/leads/{}/ownership", "followup": "/leads/{}/follow-ups", "analytics": "/customers/{}"}
NOT_PAST = "(never read past the poison)"


async def read_past_the_poison(system: Services, poisoned: PoisonRun, service: str) -> bool:
    """Whether ``service`` shows every marker, by the run's deadline: else nothing can be said of what it
    made of the poison (what it shows of it is replaced by NOT_PAST)."""
    while True:
        shown = [(await get(system, service, LEAD_PAGE[service].format(lead))).status_code for lead in poisoned.markers]
        if all(status == 200 for status in shown):
            return True
        if time.monotonic() > poisoned.fault.settled_by:
            return False
        await asyncio.sleep(0.5)


async def shown_by(system: Services, poisoned: PoisonRun, service: str, path: str) -> httpx.Response | None:
    """``service``'s answer at ``path``; None if it never read past the poison."""
    return await get(system, service, path) if await read_past_the_poison(system, poisoned, service) else None


class TestPoisonOnTheTopic(AfterAFault):
    async def test_each_poison_record_is_parked_by_every_consumer_that_cannot_apply_it(
        self, poisoned: PoisonRun, system: Services
    ) -> None:
        wanted = [(name, service) for name, p in poisoned.poison.items() for service in p.parked_by]
        while True:  # parking may follow a few retries with back-off
            parked = await parked_records(system)
            found = {(headers_of(r).get("dlq-service"), position_of(r)) for r in parked or []}
            missing = [
                f"{name}: not parked by {service}"
                for name, service in wanted
                if (service, (poisoned.poison[name].partition, poisoned.poison[name].offset)) not in found
            ]
            if not missing or time.monotonic() > poisoned.fault.settled_by:
                break
            await asyncio.sleep(1.0)
        assert parked is not None, f"there is no topic {DLQ_TOPIC}"
        assert not missing, listed(missing, f"of {len(wanted)} parkings missing")

    async def test_a_parked_record_is_the_original_with_the_dlq_headers(self, poisoned: PoisonRun, system: Services) -> None:
        by_position = {(p.partition, p.offset): (name, p) for name, p in poisoned.poison.items()}
        parked = [r for r in await parked_records(system) or [] if position_of(r) in by_position]
        assert parked, f"no record of {system.env['LEADFLOW_TOPIC']} was parked on {DLQ_TOPIC}"
        wrong = []
        for record in parked:
            name, poison = by_position[position_of(record)]
            headers = headers_of(record)
            missing = [h for h in DLQ_HEADERS if not headers.get(h)]
            if missing:
                wrong.append(f"{name} parked by {headers.get('dlq-service')}: no {', '.join(missing)}")
            if (record.key, record.value) != (poison.key, poison.value):
                wrong.append(f"{name} parked by {headers.get('dlq-service')}: not the original key and value")
            if not set(poison.headers) <= set(record.headers):
                wrong.append(f"{name} parked by {headers.get('dlq-service')}: without the original headers {poison.headers}")
            if not headers.get("dlq-attempts", "").isdigit() or int(headers["dlq-attempts"]) < 1:
                wrong.append(f"{name}: dlq-attempts {headers.get('dlq-attempts')!r}")
            try:
                datetime.fromisoformat(headers.get("dlq-time", "").replace("Z", "+00:00"))
            except ValueError:
                wrong.append(f"{name}: dlq-time {headers.get('dlq-time')!r} is not RFC 3339")
        assert not wrong, listed(wrong, f"of {len(parked)} parked records wrong")

    async def test_dead_letters_are_counted_by_each_consumer(self, poisoned: PoisonRun, system: Services) -> None:
        expected = {service: sum(service in p.parked_by for p in poisoned.poison.values()) for service in CONSUMERS}
        counted = {}
        for service in CONSUMERS:
            metrics = (await get(system, service, "/metrics")).text
            counted[service] = sum(
                sample.value
                for family in text_string_to_metric_families(metrics)
                for sample in family.samples
                if sample.name == "leadflow_events_dead_lettered_total" and sample.labels.get("service") == service
            )
        short = {service: (counted[service], n) for service, n in expected.items() if counted[service] < n}
        assert not short, f"leadflow_events_dead_lettered_total (counted, parked at least): {short}"

    async def test_no_read_model_shows_a_lead_only_poison_named(self, poisoned: PoisonRun, system: Services) -> None:
        leads = {name: poisoned.poison[name].lead_id for name in ("not JSON", "NUL in a captured name", "unknown type")}
        asked = {(name, "analytics"): lead for name, lead in leads.items()}
        asked["event for an unknown lead", "analytics"] = poisoned.poison["event for an unknown lead"].lead_id
        for service in ("assignment", "followup"):
            asked["NUL in a captured name", service] = leads["NUL in a captured name"]
        shown = {}
        for (name, service), lead in asked.items():
            answer = await shown_by(system, poisoned, service, LEAD_PAGE[service].format(lead))
            shown[f"{service} ({name})"] = NOT_PAST if answer is None else answer.status_code
        assert shown == dict.fromkeys(shown, 404), f"observed: {shown}"

    async def test_a_claim_with_a_nul_in_its_rep_owns_nothing(self, poisoned: PoisonRun, system: Services) -> None:
        lead = poisoned.unclaimed
        view = await shown_by(system, poisoned, "analytics", f"/customers/{lead}")
        timeline = await shown_by(system, poisoned, "followup", f"/leads/{lead}/follow-ups")
        ownership = await shown_by(system, poisoned, "assignment", f"/leads/{lead}/ownership")
        owners = {
            "analytics owner": NOT_PAST if view is None else (view.json().get("owner") or {}).get("rep_id"),
            "analytics ownership history": NOT_PAST
            if view is None
            else [o["rep_id"] for o in view.json().get("ownership_history", [])],
            "followup owner": NOT_PAST if timeline is None else timeline.json().get("owner"),
            "assignment owner": NOT_PAST if ownership is None else ownership.json().get("owner"),
        }
        assert owners == {
            "analytics owner": None,
            "analytics ownership history": [],
            "followup owner": None,
            "assignment owner": None,
        }, f"observed: {owners}"

    async def test_a_record_repeated_by_id_has_one_effect(self, poisoned: PoisonRun, system: Services) -> None:
        twice = poisoned.poison["same id, first copy"]
        view = await shown_by(system, poisoned, "analytics", f"/customers/{twice.lead_id}")
        ownership = await shown_by(system, poisoned, "assignment", f"/leads/{twice.lead_id}/ownership")
        seen = {
            "analytics name": NOT_PAST if view is None else view.json().get("profile", {}).get("name", view.status_code),
            "assignment knows the lead": NOT_PAST if ownership is None else ownership.status_code == 200,
        }
        first = orjson.loads(twice.value)["data"]["name"]  # the second copy's differs
        assert seen == {"analytics name": first, "assignment knows the lead": True}, f"observed: {seen}"

    async def test_a_second_capture_of_a_known_lead_rewrites_nothing(self, poisoned: PoisonRun, system: Services) -> None:
        known = poisoned.known
        view = await shown_by(system, poisoned, "analytics", f"/customers/{known.lead_id}")
        timeline = await shown_by(system, poisoned, "followup", f"/leads/{known.lead_id}/follow-ups")
        ownership = await shown_by(system, poisoned, "assignment", f"/leads/{known.lead_id}/ownership")
        shown = view.json() if view is not None else {}
        seen = {
            "analytics stage": shown.get("stage", NOT_PAST),
            "analytics owner": (shown.get("owner") or {}).get("rep_id") if view is not None else NOT_PAST,
            "analytics source": shown.get("source", NOT_PAST),
            "analytics name": shown.get("profile", {}).get("name", NOT_PAST),
            "followup stage": NOT_PAST if timeline is None else timeline.json().get("stage"),
            "followup owner": NOT_PAST if timeline is None else timeline.json().get("owner"),
            "assignment owner": NOT_PAST if ownership is None else ownership.json().get("owner"),
        }
        assert seen == {
            "analytics stage": "contacted",
            "analytics owner": known.rep,
            "analytics source": LEAD["source"],
            "analytics name": LEAD["name"],
            "followup stage": "contacted",
            "followup owner": known.rep,
            "assignment owner": known.rep,
        }, f"observed: {seen}"
