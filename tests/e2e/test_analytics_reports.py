"""analytics' team reports over HTTP against the running services: a rep's captures, claims and
follow-ups show up in the funnel, response time and leaderboard; reps may not read team reports."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import auth, eventually


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def group(body: dict, key: str) -> dict:
    found = [g for g in body["groups"] if g["key"] == key]
    assert found, body
    return found[0]


def test_a_reps_work_shows_in_funnel_response_time_and_leaderboard(services):
    rep = f"rep-{uuid.uuid4().hex[:6]}"
    leads = []
    for _ in range(2):
        body = {"name": "钱七", "phone": "135" + str(uuid.uuid4().int)[:8], "source": "referral"}
        leads.append(
            ok(httpx.post(f"{services.url('intake')}/leads", json=body, headers=auth("integration", "crm")), 201)["lead_id"]
        )
    for lead_id in leads:
        eventually(
            lambda lead_id=lead_id: ok(
                httpx.post(f"{services.url('assignment')}/leads/{lead_id}/claim", headers=auth("rep", rep))
            )
        )
    contact = {"channel": "wechat", "summary": "加了微信，约了演示", "stage": "qualified"}
    eventually(
        lambda: ok(
            httpx.post(f"{services.url('followup')}/leads/{leads[0]}/follow-ups", json=contact, headers=auth("rep", rep)), 201
        )
    )

    analytics, manager = services.url("analytics"), auth("manager", "mgr-1")

    def funnel() -> dict:
        mine = group(ok(httpx.get(f"{analytics}/funnel", params={"group_by": "rep"}, headers=manager)), rep)
        assert [s["reached"] for s in mine["stages"][:5]] == [2, 2, 1, 1, 0], mine
        return mine

    mine = eventually(funnel, timeout=30)
    assert mine["stages"][2]["conversion_from_previous"] == 0.5 and mine["won"] == 0

    responded = group(ok(httpx.get(f"{analytics}/response-time", params={"group_by": "rep"}, headers=manager)), rep)
    assert responded["responded"] == 1 and responded["p50_seconds"] == responded["avg_seconds"] > 0

    board = ok(httpx.get(f"{analytics}/leaderboard", headers=manager))["reps"]
    (standing,) = [r for r in board if r["rep_id"] == rep]
    assert (standing["leads_owned"], standing["follow_ups"], standing["won"]) == (2, 1, 0)

    for report in ("funnel", "response-time", "leaderboard"):
        refused = httpx.get(f"{analytics}/{report}", headers=auth("rep", rep))
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
