"""The analytics service on the real broker and database: a known history gives known answers over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.analytics.config import AnalyticsSettings
from services.analytics.main import build_app
from services.analytics.synthetic import History, publish
from shared.auth import mint_token
from shared.config import DEV_JWT_SECRET
from tests.conftest import unique

pytestmark = pytest.mark.integration

D0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TRICKY = 'tab\there, newline\nthere, back\\slash, "quotes", \\N, 中文'  # survives the COPY path verbatim


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    return D0 + timedelta(days=days, hours=hours, minutes=minutes)


def headers(role: str = "manager", sub: str = "mgr-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(DEV_JWT_SECRET, sub, role)}"}


@pytest.fixture
def analytics_schema(infra):
    """A catalog schema of its own; its instance schemas (``<schema>_r<N>``) are dropped with it."""
    schema = unique("a")
    yield schema
    with psycopg.connect(infra["database_url"], autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname LIKE %s", (schema, schema + r"\_r%"))
        for (name,) in rows.fetchall():
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def settings(infra, fresh_topic, analytics_schema) -> AnalyticsSettings:
    return AnalyticsSettings(
        kafka_bootstrap=infra["kafka"],
        database_url=infra["database_url"],
        topic=fresh_topic,
        analytics_schema=analytics_schema,
        consumer_group_prefix=unique("g"),
        catalog_poll_interval="200ms",
        db_pool_size=4,
    )


def wait_for(check, timeout: float = 30.0):
    """``check()``'s first result that is neither None nor False, retrying while it raises
    AssertionError or returns None/False; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout:.0f}s: {check}")
        time.sleep(0.2)


def known_history() -> dict[str, History]:
    """Six leads through known stages (see the expected answers in the tests)."""
    l1 = History().capture(at(), source="web_form", region="华东", industry="制造").claim(at(minutes=10), "rep-1")
    l1.follow_up(at(hours=1), "rep-1", "contacted").task(at(hours=1), "rep-1", due=at(days=1), done_at=at(hours=20))
    l1.follow_up(at(days=1), "rep-1", "qualified").follow_up(at(days=2), "rep-1", "quoted").won(at(days=5), "rep-1")
    l2 = History().capture(at(), source="web_form", region="华北").claim(at(minutes=5), "rep-1")
    l2.follow_up(at(hours=3), "rep-1", "contacted").task(at(hours=3), "rep-1", due=at(days=1), done_at=at(days=2))
    l2.lost(at(days=2), "rep-1")
    l3 = History().capture(at(), source="trade_show", region="华东").claim(at(minutes=1), "rep-2")
    l3.follow_up(at(minutes=30), "rep-2", "contacted", summary=TRICKY).follow_up(at(days=1), "rep-2", "qualified")
    l3.follow_up(at(days=2), "rep-2", "negotiating").won(at(days=3), None)
    l4 = (
        History()
        .capture(at(), source="trade_show")
        .claim(at(minutes=2), "rep-2")
        .release(at(days=2), "rep-2", "no_first_contact")
    )
    l5 = History().capture(at(hours=2), source="referral")
    l6 = History().capture(at(days=-10), source="web_form")  # October: outside the November range
    return {"l1": l1, "l2": l2, "l3": l3, "l4": l4, "l5": l5, "l6": l6}


async def publish_histories(settings: AnalyticsSettings, histories) -> int:
    return await publish(settings.kafka_bootstrap, settings.topic, iter([e for h in histories for e in h.events]))


def stages(group: dict) -> list[int]:
    return [s["reached"] for s in group["stages"]]


async def test_known_history_gives_known_funnel_response_time_and_leaderboard(settings):
    leads = known_history()
    await publish_histories(settings, leads.values())
    with TestClient(build_app(settings)) as client:
        november = {"from": "2026-11-01", "to": "2026-11-30"}

        def funnel_ready():
            body = client.get("/funnel", params={**november, "group_by": "source"}, headers=headers()).json()
            assert sum(g["leads"] for g in body["groups"]) == 5 and sum(g["won"] for g in body["groups"]) == 2, body
            return body

        groups = {g["key"]: g for g in wait_for(funnel_ready)["groups"]}
        assert stages(groups["web_form"]) == [2, 2, 2, 1, 1, 1, 1]
        assert (groups["web_form"]["won"], groups["web_form"]["lost"], groups["web_form"]["win_rate"]) == (1, 1, 0.5)
        assert groups["web_form"]["avg_cycle_seconds"] == 5 * 86400
        assert stages(groups["trade_show"]) == [2, 2, 1, 1, 1, 1, 1]
        assert groups["trade_show"]["stages"][2]["conversion_from_previous"] == 0.5
        assert groups["trade_show"]["avg_cycle_seconds"] == 3 * 86400
        assert stages(groups["referral"]) == [1, 0, 0, 0, 0, 0, 0]
        by_region = client.get("/funnel", params={**november, "group_by": "region"}, headers=headers()).json()
        assert {g["key"]: g["leads"] for g in by_region["groups"]} == {"华东": 2, "华北": 1, "(none)": 2}
        everyone = client.get("/funnel", params=november, headers=headers()).json()["groups"]
        assert [(g["key"], g["leads"], g["won"], g["conversion"]) for g in everyone] == [("all", 5, 2, 0.4)]

        by_rep = {
            g["key"]: g
            for g in client.get("/response-time", params={"group_by": "rep", "from": "2026-10-01"}, headers=headers()).json()[
                "groups"
            ]
        }
        assert (by_rep["rep-1"]["responded"], by_rep["rep-1"]["avg_seconds"]) == (2, 120 * 60)
        assert (by_rep["rep-1"]["p50_seconds"], by_rep["rep-1"]["p90_seconds"]) == (120 * 60, 168 * 60)
        assert (by_rep["rep-2"]["p50_seconds"], by_rep["rep-2"]["p90_seconds"]) == (30 * 60, 30 * 60)
        assert (by_rep["(none)"]["leads"], by_rep["(none)"]["responded"]) == (3, 0)
        by_source = client.get("/response-time", params={"group_by": "source", **november}, headers=headers()).json()
        assert {g["key"]: (g["leads"], g["responded"]) for g in by_source["groups"]} == {
            "web_form": (2, 2),
            "trade_show": (2, 1),
            "referral": (1, 0),
        }

        board = client.get("/leaderboard", params=november, headers=headers()).json()["reps"]
        assert [
            (
                r["rank"],
                r["rep_id"],
                r["leads_owned"],
                r["follow_ups"],
                r["won"],
                r["lost"],
                r["conversion"],
                r["tasks_done"],
                r["tasks_on_time"],
            )
            for r in board
        ] == [(1, "rep-1", 2, 4, 1, 1, 0.5, 2, 1), (2, "rep-2", 2, 3, 1, 0, 0.5, 0, 0)]
        october = client.get("/leaderboard", params={"from": "2026-10-01", "to": "2026-10-31"}, headers=headers()).json()
        assert october["reps"] == []


async def test_customer_360_now_and_as_of_with_rep_access(settings):
    leads = known_history()
    await publish_histories(settings, [leads["l1"], leads["l3"], leads["l4"]])
    l1, l4 = leads["l1"].lead_id, leads["l4"].lead_id
    with TestClient(build_app(settings)) as client:

        def won():
            view = client.get(f"/customers/{l1}", headers=headers()).json()
            assert view.get("stage") == "won", view
            return view

        view = wait_for(won)
        assert view["owner"]["rep_id"] == "rep-1" and view["first_response"]["seconds"] == 3600
        assert [s["stage"] for s in view["stage_history"]] == ["new", "assigned", "contacted", "qualified", "quoted", "won"]
        past = client.get(f"/customers/{l1}", params={"as_of": "2026-11-02T09:30:00Z"}, headers=headers()).json()
        assert past["stage"] == "assigned" and past["follow_ups"] == [] and past["first_response"] is None
        assert past["as_of"] == "2026-11-02T09:30:00Z"
        too_early = client.get(f"/customers/{l1}", params={"as_of": "2026-11-01T00:00:00Z"}, headers=headers())
        assert too_early.status_code == 404 and too_early.headers["content-type"] == "application/problem+json"
        naive = client.get(f"/customers/{l1}", params={"as_of": "2026-11-02T09:30:00"}, headers=headers())
        assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "as_of"
        assert client.get(f"/customers/{l1}", params={"as_of": "yesterday"}, headers=headers()).status_code == 422

        # Reps: their own current leads and the pool only (l4 was released to the pool).
        assert client.get(f"/customers/{l1}", headers=headers("rep", "rep-1")).status_code == 200
        assert client.get(f"/customers/{l1}", headers=headers("rep", "rep-2")).status_code == 403
        wait_for(lambda: client.get(f"/customers/{l4}", headers=headers()).json()["owner"] is None or None)
        pool_view = client.get(f"/customers/{l4}", headers=headers("rep", "rep-7")).json()
        assert [(o["rep_id"], o["release_reason"]) for o in pool_view["ownership_history"]] == [("rep-2", "no_first_contact")]
        assert client.get(f"/customers/{l1}", headers=headers("integration", "bi")).status_code == 200
        l3 = client.get(f"/customers/{leads['l3'].lead_id}", headers=headers()).json()
        assert l3["follow_ups"][0]["summary"] == TRICKY
        assert client.get(f"/customers/{l1}").status_code == 401
        missing = client.get("/customers/00000000-0000-4000-8000-000000000000", headers=headers())
        assert missing.status_code == 404 and missing.json()["type"] == "urn:leadflow:problem:not-yet-seen"
        assert client.get("/funnel", headers=headers("rep", "rep-1")).status_code == 403
        bad = client.get("/funnel", params={"from": "2026-11-30", "to": "2026-11-01"}, headers=headers())
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "from"
        assert client.get("/funnel", params={"group_by": "colour"}, headers=headers()).status_code == 422


async def test_redelivered_and_republished_events_change_nothing(settings):
    leads = known_history()
    await publish_histories(settings, leads.values())
    with TestClient(build_app(settings)) as client:
        params = {"from": "2026-11-01", "to": "2026-11-30"}

        def board():
            reps = client.get("/leaderboard", params=params, headers=headers()).json()["reps"]
            assert [r["follow_ups"] for r in reps] == [4, 3], reps
            return reps

        before = wait_for(board)
        # The relay republishes after a crash: the same CloudEvents ids at later offsets.
        await publish_histories(settings, leads.values())
        marker = History().capture(at(days=3), source="marker")
        await publish_histories(settings, [marker])
        wait_for(lambda: client.get(f"/customers/{marker.lead_id}", headers=headers()).status_code == 200 or None)
        assert client.get("/leaderboard", params=params, headers=headers()).json()["reps"] == before
        view = client.get(f"/customers/{leads['l1'].lead_id}", headers=headers()).json()
        assert len(view["follow_ups"]) == 3 and len(view["ownership_history"]) == 1
