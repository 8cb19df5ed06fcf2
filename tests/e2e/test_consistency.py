"""Consistency a person can rely on, over HTTP against the running services: commands issued back to back,
with no sleep between them, each get the right answer (docs/events.md, "What order you can rely on").

Each test is one of the races seen before: a claim right after the capture (404), a follow-up right after
the claim (409), the new owner after a reassignment (403), a claim missing from the rep's list and still in
the pool, the former owner after a release, and the 360 view's histories in topic order.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from tests.e2e.conftest import auth, eventually

pytestmark = pytest.mark.e2e
PROBLEM = "urn:leadflow:problem:"
MANAGER = auth("manager", "mgr-consistency")


class Lead:
    """One lead driven through the services by a client that never waits between requests."""

    def __init__(self, services, client: httpx.Client) -> None:
        self.services = services
        self.client = client
        body = {"name": "陈七", "phone": "135" + str(uuid.uuid4().int)[:8], "source": "referral", "region": "华南"}
        captured = client.post(self.url("intake", "/leads"), json=body, headers=auth("integration", "crm"))
        assert captured.status_code == 201, captured.text
        self.id = captured.json()["lead_id"]

    def url(self, service: str, path: str) -> str:
        return self.services.url(service) + path

    def claim(self, rep: str) -> httpx.Response:
        return self.client.post(self.url("assignment", f"/leads/{self.id}/claim"), headers=auth("rep", rep))

    def assign(self, rep: str) -> httpx.Response:
        return self.client.post(self.url("assignment", f"/leads/{self.id}/assign"), json={"rep_id": rep}, headers=MANAGER)

    def release(self, rep: str) -> httpx.Response:
        return self.client.post(self.url("assignment", f"/leads/{self.id}/release"), headers=auth("rep", rep))

    def follow_up(self, rep: str, stage: str | None = None, **extra) -> httpx.Response:
        body = {"channel": "phone", "summary": f"call by {rep}", **({"stage": stage} if stage else {}), **extra}
        return self.client.post(self.url("followup", f"/leads/{self.id}/follow-ups"), json=body, headers=auth("rep", rep))

    def stages(self) -> tuple[str, str, str]:
        """The stage as assignment, followup and analytics each have it."""
        owned = self.client.get(self.url("assignment", f"/leads/{self.id}/ownership"), headers=MANAGER).json()
        timeline = self.client.get(self.url("followup", f"/leads/{self.id}/follow-ups"), headers=MANAGER).json()
        view = self.client.get(self.url("analytics", f"/customers/{self.id}"), headers=MANAGER).json()
        return owned["stage"], timeline["stage"], view["stage"]


def status(response: httpx.Response) -> tuple[int, str | None]:
    kind = response.json().get("type") if response.headers.get("content-type", "").startswith("application/problem") else None
    return response.status_code, kind


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as session:
        yield session


def rep() -> str:
    return f"rep-{uuid.uuid4().hex[:6]}"


def test_a_claim_right_after_the_capture_is_decided_not_refused_as_unknown(services, client):
    for _ in range(5):
        lead, owner = Lead(services, client), rep()
        claimed = lead.claim(owner)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["rep_id"] == owner


def test_an_assignment_right_after_the_capture_is_decided_not_refused_as_unknown(services, client):
    for _ in range(3):
        lead, owner = Lead(services, client), rep()
        assigned = lead.assign(owner)
        assert assigned.status_code == 200, assigned.text
        assert (assigned.json()["rep_id"], assigned.json()["how"]) == (owner, "assign")


def test_a_follow_up_right_after_the_claim_is_recorded(services, client):
    for _ in range(5):
        lead, owner = Lead(services, client), rep()
        assert lead.claim(owner).status_code == 200
        logged = lead.follow_up(owner, "contacted")
        assert logged.status_code == 201, logged.text


def test_the_new_owner_may_log_right_after_a_reassignment(services, client):
    for _ in range(3):
        lead, first, second = Lead(services, client), rep(), rep()
        assert lead.claim(first).status_code == 200
        assert lead.follow_up(first).status_code == 201
        assert lead.assign(second).json()["rep_id"] == second
        logged = lead.follow_up(second, "qualified")
        assert logged.status_code == 201, logged.text


def test_a_claim_is_in_the_reps_list_and_out_of_the_pool_at_once_and_back_after_a_release(services, client):
    lead = Lead(services, client)
    pool = lead.url("assignment", "/pool")
    for _ in range(3):
        owner = rep()  # a released rep is cooled down: each round another one claims
        mine = lead.url("assignment", f"/reps/{owner}/leads")
        assert lead.claim(owner).status_code == 200
        assert lead.id in {i["lead_id"] for i in client.get(mine, headers=auth("rep", owner)).json()["items"]}
        in_pool = client.get(pool, params={"region": "华南", "limit": 200}, headers=auth("rep", owner)).json()["items"]
        assert lead.id not in {i["lead_id"] for i in in_pool}
        assert lead.client.post(lead.url("assignment", f"/leads/{lead.id}/release"), headers=MANAGER).status_code == 200
        assert lead.id not in {i["lead_id"] for i in client.get(mine, headers=auth("rep", owner)).json()["items"]}
        in_pool = client.get(pool, params={"region": "华南", "limit": 200}, headers=auth("rep", owner)).json()["items"]
        assert lead.id in {i["lead_id"] for i in in_pool}


def test_the_tasks_a_follow_up_planned_are_listed_at_once(services, client):
    lead, owner = Lead(services, client), rep()
    assert lead.claim(owner).status_code == 200
    agreed = "2031-03-01T09:00:00Z"
    assert lead.follow_up(owner, next_follow_up_at=agreed, next_step="send the quote").status_code == 201
    listed = client.get(lead.url("followup", "/tasks"), params={"lead_id": lead.id}, headers=auth("rep", owner)).json()
    assert ("agreed_follow_up", agreed, "open") in {(t["kind"], t["due_at"], t["status"]) for t in listed["items"]}
    first_contact = next(t for t in listed["items"] if t["kind"] == "first_contact")
    assert first_contact["status"] == "done"
    done = client.post(lead.url("followup", f"/tasks/{first_contact['task_id']}/complete"), headers=auth("rep", owner))
    assert done.status_code == 200 and done.json()["status"] == "done"


def test_once_followup_has_seen_the_release_the_former_owner_is_refused(services, client):
    lead, owner = Lead(services, client), rep()
    assert lead.claim(owner).status_code == 200
    assert lead.follow_up(owner).status_code == 201
    assert lead.release(owner).status_code == 200
    timeline = lead.url("followup", f"/leads/{lead.id}/follow-ups")
    eventually(lambda: client.get(timeline, headers=MANAGER).json()["owner"] is None, interval=0.05)
    assert status(lead.follow_up(owner, "qualified")) == (403, PROBLEM + "not-owner")
    assert lead.claim(rep()).status_code == 200
    assert status(lead.follow_up(owner)) == (403, PROBLEM + "not-owner")


def test_after_a_race_with_a_release_assignment_followup_and_analytics_agree_on_the_stage(services, client):
    """The former owner logs (moving the stage) right after the release, before followup consumed it."""
    leads = []
    for _ in range(3):
        lead, owner = Lead(services, client), rep()
        assert lead.claim(owner).status_code == 200
        assert lead.follow_up(owner, "contacted").status_code == 201
        assert lead.release(owner).status_code == 200
        raced = lead.follow_up(owner, "quoted")
        assert status(raced)[0] in (201, 403), raced.text  # accepted in the race, or refused once the release was seen
        leads.append(lead)
    for lead in leads:
        eventually(lambda lead=lead: lead.stages() == ("new", "new", "new") or None, timeout=20)


def test_after_a_race_with_a_reassignment_every_service_has_the_new_owners_stage(services, client):
    leads = []
    for _ in range(3):
        lead, first, second = Lead(services, client), rep(), rep()
        assert lead.claim(first).status_code == 200
        assert lead.follow_up(first, "contacted").status_code == 201
        assert lead.assign(second).status_code == 200
        raced = lead.follow_up(first, "quoted")
        assert status(raced)[0] in (201, 403), raced.text
        leads.append((lead, second))
    for lead, second in leads:
        eventually(lambda lead=lead: lead.stages() == ("assigned", "assigned", "assigned") or None, timeout=20)
        timeline = client.get(lead.url("followup", f"/leads/{lead.id}/follow-ups"), headers=MANAGER).json()
        assert timeline["owner"] == second
        assert lead.follow_up(second, "qualified").status_code == 201


def test_a_lead_just_captured_is_in_the_360_view_at_once(services, client):
    lead = Lead(services, client)
    view = client.get(lead.url("analytics", f"/customers/{lead.id}"), headers=MANAGER)
    assert view.status_code == 200, view.text
    assert view.json()["stage"] == "new" and view.json()["source"] == "referral"


def test_the_360_histories_are_in_time_order_whatever_order_they_were_published_in(services, client):
    """Claim and release back to back: followup's new → assigned (dated at the claim) lands after the release."""
    lead, owner = Lead(services, client), rep()
    assert lead.claim(owner).status_code == 200
    assert lead.release(owner).status_code == 200
    timeline = lead.url("followup", f"/leads/{lead.id}/follow-ups")
    eventually(lambda: client.get(timeline, headers=MANAGER).json()["owner"] is None, interval=0.05)
    # followup has consumed the release, so its echoes (new → assigned at the claim's time, then back to new)
    # are recorded; a view of now waits for them to be published and consumed.
    view = client.get(lead.url("analytics", f"/customers/{lead.id}"), headers=MANAGER).json()
    moments = [datetime.fromisoformat(s["at"]) for s in view["stage_history"]]
    assert moments == sorted(moments)
    assert [s["stage"] for s in view["stage_history"]] == ["new", "assigned", "new"] and view["stage"] == "new"
    (owned,) = view["ownership_history"]
    assert datetime.fromisoformat(owned["claimed_at"]) <= datetime.fromisoformat(owned["released_at"])
    assert lead.stages() == ("new", "new", "new")


def test_leads_nobody_captured_are_answered_not_yet_seen_with_retry_after(services, client):
    nobody = str(uuid.uuid4())
    answers = [
        client.post(services.url("assignment") + f"/leads/{nobody}/claim", headers=auth("rep", rep())),
        client.post(
            services.url("followup") + f"/leads/{nobody}/follow-ups", json={"channel": "phone", "summary": "x"}, headers=MANAGER
        ),
        client.get(services.url("analytics") + f"/customers/{nobody}", headers=MANAGER),
    ]
    for answer in answers:
        assert status(answer) == (404, PROBLEM + "not-yet-seen"), answer.text
        assert answer.headers["retry-after"] == "1" and answer.json()["caught_up"] is True
