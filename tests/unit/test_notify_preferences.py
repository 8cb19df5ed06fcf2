"""Quiet hours and daily digests, judged in the person's time zone, with a fake clock (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from services.notify.domain.preferences import (
    HoldUntil,
    Preferences,
    QuietHours,
    SendNow,
    ToDigest,
    digest_due,
    latest_digest_slot,
    plan,
)
from shared.clock import FakeClock

# 22:00–08:00 Beijing time (UTC+8): 14:00–00:00 UTC.
NIGHTS = Preferences(channels=("email", "feed"), quiet_hours=QuietHours(time(22), time(8)), timezone="Asia/Shanghai")


def test_outside_quiet_hours_a_message_goes_at_once():
    clock = FakeClock(datetime(2026, 3, 2, 6, 0, tzinfo=UTC))  # 14:00 in Shanghai
    assert plan(NIGHTS, "email", clock()) == SendNow()


def test_in_quiet_hours_it_waits_for_their_end_in_the_persons_zone():
    clock = FakeClock(datetime(2026, 3, 2, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    assert plan(NIGHTS, "email", clock()) == HoldUntil(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))  # 08:00 next morning
    clock.advance(timedelta(hours=2))  # 01:30, past midnight, still quiet
    assert plan(NIGHTS, "email", clock()) == HoldUntil(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    clock.advance(timedelta(hours=6, minutes=30))  # 08:00 sharp: over
    assert plan(NIGHTS, "email", clock()) == SendNow()


def test_a_window_within_one_day_and_an_empty_one():
    lunch = Preferences(quiet_hours=QuietHours(time(12), time(13, 30)), timezone="Europe/Berlin")
    at = datetime(2026, 7, 1, 10, 15, tzinfo=UTC)  # 12:15 in Berlin (summer time)
    assert plan(lunch, "wecom", at) == HoldUntil(datetime(2026, 7, 1, 11, 30, tzinfo=UTC))
    assert plan(lunch, "wecom", at + timedelta(hours=2)) == SendNow()
    never = Preferences(quiet_hours=QuietHours(time(9), time(9)))
    assert plan(never, "email", at) == SendNow()


def test_the_feed_is_never_held():
    at = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # quiet
    assert plan(NIGHTS, "feed", at) == SendNow()
    assert plan(Preferences(digest=True), "feed", at) == SendNow()


def test_a_digest_person_gets_single_messages_only_in_the_feed():
    digest = Preferences(digest=True, digest_at=time(9), timezone="Asia/Shanghai")
    assert plan(digest, "email", datetime(2026, 3, 2, 3, 0, tzinfo=UTC)) == ToDigest()


def test_the_digest_goes_out_at_the_first_digest_time_after_its_oldest_message():
    digest = Preferences(digest=True, digest_at=time(9), timezone="Asia/Shanghai")
    clock = FakeClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))  # 10:00 in Shanghai, after today's 09:00
    oldest = clock()
    assert not digest_due(digest, oldest, clock())
    clock.advance(timedelta(hours=22, minutes=59))  # 08:59 next day
    assert not digest_due(digest, oldest, clock())
    clock.advance(timedelta(minutes=1))  # 09:00
    assert digest_due(digest, oldest, clock())
    assert latest_digest_slot(digest, clock()) == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)


def test_a_message_before_todays_digest_time_is_in_todays_digest():
    digest = Preferences(digest=True, digest_at=time(18), timezone="Asia/Shanghai")
    oldest = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00
    assert not digest_due(digest, oldest, datetime(2026, 3, 2, 9, 59, tzinfo=UTC))  # 17:59
    assert digest_due(digest, oldest, datetime(2026, 3, 2, 10, 0, tzinfo=UTC))  # 18:00
