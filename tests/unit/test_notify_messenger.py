"""How the messenger plans a notice per channel (no I/O: its store is not touched by planning)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time

from services.notify.domain.notices import Person
from services.notify.domain.preferences import Preferences, QuietHours
from services.notify.messages import Messages
from services.notify.messenger import Messenger
from services.notify.store.people import PendingNotice
from shared.clock import FakeClock
from shared.retry import RetryPolicy

NIGHT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
NOTICE = PendingNotice(7, "rep-1", "lead_assigned", "L1", {"lead_name": "王芳", "deadline": "2026-03-04T01:00:00Z"}, NIGHT)
PERSON = Person("rep-1", "李雷", email="lilei@example.com")


def messenger(messages: Messages, channels=("email", "wecom")) -> Messenger:
    return Messenger(
        None,  # type: ignore[arg-type] - planning does not use the store
        messages,
        dict.fromkeys(channels, object()),  # type: ignore[arg-type]
        clock=FakeClock(NIGHT),
        backoff=RetryPolicy(),
        attempts=3,
        poll_interval=1,
        wake=asyncio.Event(),
    )


def test_each_chosen_channel_is_planned_and_the_feed_is_written_at_once():
    prefs = Preferences(channels=("email", "wecom", "feishu", "feed"), quiet_hours=QuietHours(time(22), time(8)))
    sends, feed = messenger(Messages()).plan(NOTICE, PERSON, prefs)
    # feishu is not configured here; the others wait for 08:00 Shanghai (00:00 UTC).
    assert [(s.channel, s.state, s.not_before.hour) for s in sends] == [("email", "due", 0), ("wecom", "due", 0)]
    assert feed is not None and "王芳" in feed.title and feed.notice_id == 7


def test_a_deactivated_person_is_told_nothing():
    gone = Person("rep-1", "李雷", email="lilei@example.com", active=False)
    assert messenger(Messages()).plan(NOTICE, gone, Preferences()) == ([], None)


def test_a_notice_its_template_cannot_render_is_dropped_not_retried_forever(tmp_path):
    (tmp_path / "zh-CN").mkdir()
    (tmp_path / "zh-CN" / "lead_assigned.txt").write_text("{{ at('not a time') }}", encoding="utf-8")
    assert messenger(Messages(tmp_path)).plan(NOTICE, PERSON, Preferences(channels=("feed",))) == ([], None)
