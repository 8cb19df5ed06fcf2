"""The console's words and page rules without I/O: refusals said in words in the person's zone, safe return
paths after sign-in, masking, and failures answered as pages."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.console.config import ConsoleSettings
from services.console.i18n import MESSAGES, Translator, zone
from services.console.leadcards import mask_name, mask_phone
from services.console.live import News, news_of
from services.console.main import build_app
from services.console.web import Web, safe_next, template_environment
from shared.events import FollowUpTaskOverdue, LeadClaimed, LeadReleased
from shared.problems import OUTAGE_RETRY_AFTER

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_every_message_has_both_languages():
    assert all(len(texts) == 2 and all(texts) for texts in MESSAGES.values())


def test_a_cooldown_refusal_says_until_when_in_the_persons_zone():
    zh = Translator("zh", SHANGHAI)
    text = zh.refusal("reclaim-cooldown", body={"cooldown_until": "2026-12-11T01:30:00+00:00"})
    assert text == "你释放过这条线索，可在 2026-12-11 09:30 之后再次领取。"
    en = Translator("en", ZoneInfo("Europe/Berlin"))
    assert en.refusal("reclaim-cooldown", body={"cooldown_until": "2026-12-11T01:30:00Z"}).endswith("after 2026-12-11 02:30.")


def test_the_claim_limit_refusal_names_the_limit():
    assert Translator("zh", SHANGHAI).refusal("claim-limit-reached", body={"limit": 200}) == "你已拥有 200 条未结线索，已达上限。"


def test_validation_refusals_name_the_fields_and_unknown_kinds_are_still_words():
    t = Translator("zh", SHANGHAI)
    said = t.refusal("validation-error", body={"errors": [{"field": "summary", "message": "must not be blank"}]})
    assert said == "输入有误：summary: must not be blank"
    assert t.refusal("brand-new-rule", "why") == "操作被拒绝（brand-new-rule）：why"


@pytest.mark.parametrize("name", ["Not/A_Zone", "../../etc/passwd", "", None])
def test_an_unknown_zone_falls_back_to_the_default(name):
    assert zone(name, "Asia/Shanghai") == SHANGHAI


@pytest.mark.parametrize(
    ("asked", "safe"),
    [("/pool?grade=A", "/pool?grade=A"), ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/\\evil", "/"), (None, "/")],
)
def test_sign_in_returns_only_to_a_path_of_this_site(asked, safe):
    assert safe_next(asked) == safe


def test_pool_leads_are_masked_for_reps():
    assert mask_phone("+8613800138000") == "138****8000"
    assert mask_name("王芳") == "王*"


def test_who_hears_of_what_on_the_live_feed():
    assigned = LeadClaimed(lead_id="l", rep_id="rep-1", how="assign", protected_until="2030-01-01T00:00:00Z", assigned_by="mgr")
    assert news_of(assigned) == [("rep-1", News("assigned", "l", {"by": "mgr"}))]
    claimed = LeadClaimed(lead_id="l", rep_id="rep-1", how="claim", protected_until="2030-01-01T00:00:00Z")
    assert news_of(claimed) == []  # the rep did it themself
    overdue = FollowUpTaskOverdue(lead_id="l", task_id="t", rep_id="rep-1", due_at="2030-01-01T00:00:00Z", escalated_to="mgr")
    assert [who for who, _ in news_of(overdue)] == ["rep-1", "mgr"]
    recycled = LeadReleased(lead_id="l", rep_id="rep-1", reason="no_follow_up", cooldown_until="2030-01-01T00:00:00Z")
    assert news_of(recycled)[0][1].kind == "recycled"


def test_a_failure_is_answered_as_a_page_and_an_outage_as_503():
    app = build_app(ConsoleSettings())
    app.state.web = Web(ConsoleSettings(), None, None, None, None, template_environment(), "v")  # type: ignore[arg-type]

    @app.get("/broken")
    async def broken() -> None:
        raise psycopg.OperationalError("connection refused")

    client = TestClient(app, raise_server_exceptions=False)
    page = client.get("/broken", headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.headers["retry-after"] == str(OUTAGE_RETRY_AFTER)
    assert "服务暂时不可用，未做任何更改" in page.text and page.headers["content-security-policy"].startswith(
        "default-src 'self'"
    )
    problem = client.get("/broken", headers={"Accept": "application/json"})
    assert problem.status_code == 503 and problem.headers["content-type"] == "application/problem+json"
