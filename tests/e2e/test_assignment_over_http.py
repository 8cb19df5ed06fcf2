"""assignment over HTTP and Kafka, with intake feeding it: claims, recycling, cooldown, offboarding.

The e2e fixture sets LEADFLOW_FIRST_CONTACT_SLA=6s, a 500 ms scheduler tick and a 1 h cooldown.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest

from tests.e2e.conftest import auth, eventually
from tests.integration.kafka_reading import read_all

pytestmark = pytest.mark.e2e
PROBLEM = "urn:leadflow:problem:"


def random_mobile() -> str:
    return "137" + str(uuid.uuid4().int)[:8]


def capture(services, region: str = "上海", **extra) -> str:
    headers = extra.pop("headers", auth("integration", "crm-sync"))
    body = {"name": "赵六", "phone": random_mobile(), "source": "web_form", "region": region, **extra}
    response = httpx.post(f"{services.url('intake')}/leads", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["lead_id"]


def ownership(services, lead_id: str) -> dict:
    response = httpx.get(f"{services.url('assignment')}/leads/{lead_id}/ownership", headers=auth("manager", "mgr-1"))
    assert response.status_code == 200, response.text
    return response.json()


def known(services, lead_id: str) -> dict:
    """Wait until assignment has consumed the lead's LeadCaptured."""

    def check():
        response = httpx.get(f"{services.url('assignment')}/leads/{lead_id}/ownership", headers=auth("manager", "mgr-1"))
        return response.json() if response.status_code == 200 else None

    return eventually(check)


def claim(services, lead_id: str, rep: str) -> httpx.Response:
    return httpx.post(f"{services.url('assignment')}/leads/{lead_id}/claim", headers=auth("rep", rep))


def pool_ids(services, **filters) -> set[str]:
    response = httpx.get(f"{services.url('assignment')}/pool", params={"limit": 200, **filters}, headers=auth("rep", "rep-any"))
    assert response.status_code == 200, response.text
    return {item["lead_id"] for item in response.json()["items"]}


def test_an_uncontacted_claim_returns_to_the_pool_and_its_rep_is_cooled_down(services):
    lead_id = capture(services, region="e2e-recycle")
    known(services, lead_id)
    eventually(lambda: lead_id in pool_ids(services, region="e2e-recycle"))
    won = claim(services, lead_id, "rep-a")
    assert won.status_code == 200, won.text
    assert won.json()["rep_id"] == "rep-a" and won.json()["how"] == "claim"
    lost = claim(services, lead_id, "rep-b")
    assert (lost.status_code, lost.json()["type"]) == (409, PROBLEM + "lead-already-owned")

    released = eventually(lambda: ownership(services, lead_id)["owner"] is None, timeout=20)
    assert released
    eventually(lambda: lead_id in pool_ids(services, region="e2e-recycle"))
    again = claim(services, lead_id, "rep-a")
    assert (again.status_code, again.json()["type"]) == (409, PROBLEM + "reclaim-cooldown")
    assert "cooldown_until" in again.json()
    assert claim(services, lead_id, "rep-b").status_code == 200

    expected = [
        ("LeadClaimed", "rep-a", None),
        ("LeadReleased", "rep-a", "no_first_contact"),
        ("LeadClaimed", "rep-b", None),
    ]
    eventually(lambda: changes_of_hands(services, lead_id) == expected)


def changes_of_hands(services, lead_id: str) -> list[tuple]:
    events = asyncio.run(read_all(services.env["LEADFLOW_KAFKA_BOOTSTRAP"], services.env["LEADFLOW_TOPIC"], 1, timeout_s=3))
    return [
        (e.type, e.payload().rep_id, getattr(e.payload(), "reason", None))
        for _, e in events
        if e.subject == lead_id and e.type in ("LeadClaimed", "LeadReleased")
    ]


def test_fifty_claims_over_http_one_wins(services):
    lead_id = capture(services)
    known(services, lead_id)

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=services.url("assignment"), timeout=30) as client:
            return await asyncio.gather(
                *(client.post(f"/leads/{lead_id}/claim", headers=auth("rep", f"racer-{n}")) for n in range(50))
            )

    responses = asyncio.run(race())
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 49}
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {PROBLEM + "lead-already-owned"}
    winner = next(r.json()["rep_id"] for r in responses if r.status_code == 200)
    eventually(lambda: changes_of_hands(services, lead_id) == [("LeadClaimed", winner, None)])  # exactly one, the winner's


def test_offboarding_transfers_every_lead(services):
    url = services.url("assignment")
    leads = [capture(services, region="e2e-offboard") for _ in range(3)]
    for lead_id in leads:
        known(services, lead_id)
    for lead_id in leads[:2]:
        assert claim(services, lead_id, "rep-leaving").status_code == 200
    manager = auth("manager", "mgr-1")
    forbidden = httpx.post(
        f"{url}/reps/rep-leaving/offboard", json={"transfer_to": "rep-heir"}, headers=auth("rep", "rep-leaving")
    )
    assert forbidden.status_code == 403
    done = httpx.post(f"{url}/reps/rep-leaving/offboard", json={"transfer_to": "rep-heir"}, headers=manager)
    assert done.status_code == 200, done.text
    assert (done.json()["moved"], set(done.json()["lead_ids"])) == (2, set(leads[:2]))
    assert {ownership(services, lead_id)["owner"] for lead_id in leads[:2]} == {"rep-heir"}

    def heir_has_them():
        items = httpx.get(f"{url}/reps/rep-heir/leads", headers=auth("rep", "rep-heir")).json()["items"]
        return {item["lead_id"] for item in items} >= set(leads[:2])

    eventually(heir_has_them)
    assert httpx.post(f"{url}/reps/rep-leaving/offboard", json={"transfer_to": "rep-heir"}, headers=manager).json()["moved"] == 0
    refused = claim(services, leads[2], "rep-leaving")
    assert (refused.status_code, refused.json()["type"]) == (409, PROBLEM + "rep-offboarded")


def test_reports_assignments_and_refusals(services):
    url = services.url("assignment")
    reported = capture(services, claim=True, headers=auth("rep", "rep-reporter"))
    eventually(lambda: known(services, reported)["owner"] == "rep-reporter")
    assert ownership(services, reported)["how"] == "report"

    other = httpx.post(f"{url}/leads/{reported}/release", headers=auth("rep", "rep-nosy"))
    assert (other.status_code, other.json()["type"]) == (403, PROBLEM + "not-lead-owner")
    peek = httpx.get(f"{url}/reps/rep-reporter/leads", headers=auth("rep", "rep-nosy"))
    assert peek.status_code == 403
    by_rep = httpx.post(f"{url}/leads/{reported}/assign", json={"rep_id": "rep-nosy"}, headers=auth("rep", "rep-nosy"))
    assert by_rep.status_code == 403
    moved = httpx.post(f"{url}/leads/{reported}/assign", json={"rep_id": "rep-new"}, headers=auth("manager", "mgr-1"))
    assert moved.status_code == 200 and moved.json()["how"] == "assign"
    released = httpx.post(f"{url}/leads/{reported}/release", headers=auth("rep", "rep-new"))
    assert released.status_code == 200 and released.json()["reason"] == "manual"
    again = httpx.post(f"{url}/leads/{reported}/release", headers=auth("rep", "rep-new"))
    assert (again.status_code, again.json()["type"]) == (409, PROBLEM + "lead-not-owned")

    # assignment cannot tell a lead nobody captured from one whose capture is still on its way: after waiting
    # for the lead's partition it says it has not seen it (yet), having read that partition to its end.
    unknown = claim(services, str(uuid.uuid4()), "rep-a")
    assert (unknown.status_code, unknown.json()["type"]) == (404, PROBLEM + "not-yet-seen")
    assert unknown.headers["retry-after"] and unknown.json()["caught_up"] is True
    assert claim(services, "not-a-uuid", "rep-a").status_code == 422
    assert httpx.post(f"{url}/leads/{reported}/claim", headers=auth("integration", "crm")).status_code == 403
    assert httpx.post(f"{url}/leads/{reported}/claim").status_code == 401
    bad = httpx.post(f"{url}/leads/{reported}/assign", json={"rep_id": ""}, headers=auth("manager", "mgr-1"))
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{url}/pool", params={"cursor": "junk!"}, headers=auth("rep", "r")).status_code == 422
    assert httpx.get(f"{url}/pool", params={"grade": "Z"}, headers=auth("rep", "r")).status_code == 422
