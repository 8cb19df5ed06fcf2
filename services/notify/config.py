"""notify's settings (``LEADFLOW_*`` environment variables)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from services.notify.domain.preferences import Language, valid_timezone
from shared.config import Duration, ServiceSettings


class NotifySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    notify_port: int = 8005
    notify_schema: str = "notify"

    # --- webhooks to systems ---
    # Receivers on loopback, private, link-local, multicast or reserved addresses are refused unless this is on
    # (local development and tests, where the receivers run on this machine).
    webhook_allow_private_networks: bool = False
    # One attempt may take this long (connect + answer); a slow receiver holds only its own lane meanwhile.
    webhook_timeout: Duration = timedelta(seconds=10)
    # Failed deliveries are retried with exponential back-off and full jitter for this long, then parked.
    webhook_retry_for: Duration = timedelta(hours=24)
    webhook_retry_base: Duration = timedelta(seconds=5)
    webhook_retry_cap: Duration = timedelta(hours=1)
    # A subscription failing (no success at all) for this long is paused and its owner told.
    webhook_pause_after: Duration = timedelta(hours=24)
    # Attempts in flight at once, in all and per subscription (so one slow receiver cannot take every slot).
    webhook_max_in_flight: int = 256
    webhook_max_in_flight_per_subscription: int = 128
    # The delivery log, notices and feed items are kept this long (parked deliveries until re-sent).
    notify_retention: Duration = timedelta(days=30)
    # How often the delivery worker looks for due work when nothing woke it.
    webhook_poll_interval: Duration = timedelta(milliseconds=200)

    # --- people ---
    # e-mail: smtp://[user:password@]host[:port] (STARTTLS when the server offers it) or smtps:// (TLS from the start).
    smtp_url: str | None = None
    smtp_from: str = "LeadFlow <leadflow@localhost>"
    smtp_timeout: Duration = timedelta(seconds=15)
    # Group robots: the robot's webhook URL (and, for DingTalk and Feishu, its signing secret).
    wecom_webhook_url: str | None = None
    dingtalk_webhook_url: str | None = None
    dingtalk_secret: str | None = None
    feishu_webhook_url: str | None = None
    feishu_secret: str | None = None
    # Defaults for people who set no preferences of their own.
    notify_language: Language = "zh-CN"
    notify_timezone: str = "Asia/Shanghai"
    # Events older than this when notify reads them (history read on a first start, a long outage) tell nobody:
    # a rep is not mailed about a lead assigned last year. Webhooks are not affected (see docs/notify.md).
    notify_max_event_age: Duration = timedelta(hours=1)
    # A task's owner is reminded this long before it is due.
    notify_due_soon_before: Duration = timedelta(hours=1)
    # Mirrors assignment's rule, to tell a rep by when to make the first contact.
    first_contact_sla: Duration = timedelta(hours=48)
    # How often reminders, quiet-hour releases, digests and auto-pauses are looked for.
    notify_tick: Duration = timedelta(seconds=1)
    # A message to a person that keeps failing on a channel is given up after this many attempts.
    notify_send_attempts: int = 8

    @field_validator("notify_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not valid_timezone(value):
            raise ValueError(f"LEADFLOW_NOTIFY_TIMEZONE: unknown time zone {value!r} (e.g. Asia/Shanghai)")
        return value
