"""The walking skeleton, over HTTP against the four running services: capture → claim → follow-up →
release, and analytics' customer 360 shows all four, now and as of a moment in between."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import auth, eventually


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def test_capture_claim_follow_up_release_show_in_customer_360(services):
    rep = f"rep-{uuid.uuid4().hex[:6]}"
    body = {
        "name": "王五",
        "phone": "136" + str(uuid.uuid4().int)[:8],
        "source": "trade_show",
        "industry": "制造",
        "region": "华东",
    }
    lead_id = ok(httpx.post(f"{services.url('intake')}/leads", json=body, headers=auth("integration", "crm")), 201)["lead_id"]

    # Each service learns of the lead from the topic, so each step may have to wait for the previous one.
    claimed = eventually(lambda: ok(httpx.post(f"{services.url('assignment')}/leads/{lead_id}/claim", headers=auth("rep", rep))))
    assert claimed["rep_id"] == rep
    follow_up = {"channel": "phone", "summary": "首次电话沟通，了解需求", "stage": "contacted"}
    eventually(
        lambda: ok(
            httpx.post(f"{services.url('followup')}/leads/{lead_id}/follow-ups", json=follow_up, headers=auth("rep", rep)), 201
        )
    )
    ok(httpx.post(f"{services.url('assignment')}/leads/{lead_id}/release", headers=auth("rep", rep)))

    analytics = services.url("analytics")

    def released_view() -> dict:
        view = ok(httpx.get(f"{analytics}/customers/{lead_id}", headers=auth("manager", "mgr-1")))
        assert view["ownership_history"] and view["ownership_history"][0]["released_at"], view
        return view

    view = eventually(released_view, timeout=30)
    assert view["source"] == "trade_show" and view["profile"]["name"] == "王五" and view["captured_at"]
    (ownership,) = view["ownership_history"]
    assert (ownership["rep_id"], ownership["how"], ownership["release_reason"]) == (rep, "claim", "manual")
    assert view["owner"] is None and view["stage"] == "new"
    (logged,) = view["follow_ups"]
    assert (logged["rep_id"], logged["channel"], logged["stage"]) == (rep, "phone", "contacted")
    assert view["first_response"]["rep_id"] == rep and view["first_response"]["seconds"] >= 0
    assert "contacted" in [s["stage"] for s in view["stage_history"]]

    # As of the follow-up, the rep still owned the lead.
    as_of = logged["at"]
    then = ok(httpx.get(f"{analytics}/customers/{lead_id}", params={"as_of": as_of}, headers=auth("manager", "mgr-1")))
    assert then["owner"]["rep_id"] == rep and then["stage"] == "contacted" and len(then["follow_ups"]) == 1

    # Released to the pool: any rep may look at it now.
    assert httpx.get(f"{analytics}/customers/{lead_id}", headers=auth("rep", "rep-someone-else")).status_code == 200
