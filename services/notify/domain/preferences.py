"""When and how a person wants to hear: channels, quiet hours, a daily digest instead of single messages.

Time is a parameter: every rule takes ``now`` (UTC) and judges it in the person's own time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Channel = Literal["email", "wecom", "dingtalk", "feishu", "feed"]
CHANNELS: tuple[Channel, ...] = ("email", "wecom", "dingtalk", "feishu", "feed")
Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, in local time, with no messages (``22:00``–``08:00`` spans midnight); start == end: none."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, local: datetime) -> datetime:
        """The first moment at or after ``local`` when the window is over."""
        candidate = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        return candidate if candidate > local else candidate + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Preferences:
    channels: tuple[Channel, ...] = ("email", "feed")
    quiet_hours: QuietHours | None = None
    digest: bool = False
    """Collect messages into one a day (at ``digest_at``) instead of sending each."""
    digest_at: time = time(9, 0)
    timezone: str = "Asia/Shanghai"
    language: Language = "zh-CN"
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class SendNow:
    pass


@dataclass(frozen=True, slots=True)
class HoldUntil:
    at: datetime


@dataclass(frozen=True, slots=True)
class ToDigest:
    pass


Plan = SendNow | HoldUntil | ToDigest


def plan(prefs: Preferences, channel: Channel, now: datetime) -> Plan:
    """What to do with one message on one channel now.

    The console's feed is not an interruption (it is there when the person looks), so it is always immediate;
    the other channels wait for the digest, or for the end of quiet hours."""
    if channel == "feed":
        return SendNow()
    if prefs.digest:
        return ToDigest()
    if prefs.quiet_hours is not None:
        local = now.astimezone(prefs.zone)
        if prefs.quiet_hours.contains(local.time()):
            return HoldUntil(prefs.quiet_hours.end_after(local).astimezone(UTC))
    return SendNow()


def latest_digest_slot(prefs: Preferences, now: datetime) -> datetime:
    """The most recent digest time (``digest_at`` local) at or before ``now``."""
    local = now.astimezone(prefs.zone)
    slot = local.replace(hour=prefs.digest_at.hour, minute=prefs.digest_at.minute, second=0, microsecond=0)
    if slot > local:
        slot -= timedelta(days=1)
    return slot.astimezone(UTC)


def digest_due(prefs: Preferences, oldest_waiting: datetime, now: datetime) -> bool:
    """A digest goes out at the first digest time after its oldest message arrived (never a second one that day)."""
    return latest_digest_slot(prefs, now) > oldest_waiting


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True
