"""Messages from templates in both languages, and the group robots' signed requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from services.notify.domain import robots
from services.notify.domain.notices import KINDS
from services.notify.domain.preferences import LANGUAGES
from services.notify.messages import TEMPLATES, Messages

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PARAMS = {
    "lead_name": "王芳",
    "grade": "A",
    "score": 85,
    "company": "华东制造",
    "deadline": "2026-03-04T01:00:00Z",
    "how": "assign",
    "assigned_by": "张经理",
    "title": "回访",
    "due_at": "2026-03-02T03:30:00Z",
    "task_id": "T1",
    "recycle_at": "2026-03-02T04:00:00Z",
    "rep_id": "rep-1",
    "rep_name": "李雷",
    "amount": 120000.0,
    "currency": "CNY",
    "subscription_id": "S1",
    "url": "https://hooks.example.com/in",
    "reason": "failing",
    "items": [
        {
            "kind": "task_due_soon",
            "params": {"title": "回访", "due_at": "2026-03-02T03:30:00Z"},
            "event_time": "2026-03-02T00:00:00+00:00",
        }
    ],
}


def test_every_kind_has_a_template_in_every_language():
    for language in LANGUAGES:
        assert {p.stem for p in (Path(TEMPLATES) / language).glob("*.txt")} == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_template_renders(kind, language):
    message = Messages().render(kind, PARAMS, reader="李雷", language=language, timezone="Asia/Shanghai", now=NOW)
    assert message.subject and "\n" not in message.subject and message.body


def test_times_are_in_the_readers_zone_and_time_left_counts_from_sending():
    zh = Messages().render("lead_assigned", PARAMS, reader="李雷", language="zh-CN", timezone="Asia/Shanghai", now=NOW)
    assert "王芳" in zh.subject and "A" in zh.subject and "85" in zh.subject
    assert "2026-03-04 09:00" in zh.body and "2 天" in zh.body
    en = Messages().render("recycle_warning", PARAMS, reader="Li", language="en", timezone="Europe/London", now=NOW)
    assert "2026-03-02 04:00" in en.body and "3 h" in en.subject


def test_dingtalk_is_signed_with_timestamp_and_sign_query_parameters():
    url = robots.dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=T", "SEC123", 1700000000000)
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["T"] and query["timestamp"] == ["1700000000000"]
    expected = base64.b64encode(hmac.new(b"SEC123", b"1700000000000\nSEC123", hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]  # parse_qs decodes the URL encoding
    assert unquote(robots.dingtalk_sign("SEC123", 1700000000000)) == expected
    body = robots.dingtalk("标题", "正文", "+8613800138000")
    assert body["at"]["atMobiles"] == ["13800138000"] and "@13800138000" in body["markdown"]["text"]


def test_feishu_is_signed_in_the_body_and_wecom_mentions_by_mobile():
    body = robots.feishu("标题", "正文", "SEC", 1700000000)
    expected = base64.b64encode(hmac.new(b"1700000000\nSEC", b"", hashlib.sha256).digest()).decode()
    assert (body["timestamp"], body["sign"], body["msg_type"]) == ("1700000000", expected, "text")
    assert "sign" not in robots.feishu("t", "b", None, 1700000000)
    wecom = robots.wecom("标题", "正文", "+8613800138000")
    assert wecom["text"]["mentioned_mobile_list"] == ["13800138000"] and wecom["text"]["content"].startswith("标题")
