"""The API's request and response bodies."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.notify.domain.preferences import Channel, Language
from shared.text import OptionalSingleLine, SingleLine

DeliveryStatus = Literal["pending", "delivered", "parked", "cancelled"]


class SubscriptionIn(BaseModel):
    """A system that wants LeadFlow's events over HTTP."""

    model_config = ConfigDict(extra="forbid")

    url: SingleLine = Field(max_length=2048, description="Where to POST each event (http or https).")
    types: list[SingleLine] | None = Field(
        default=None, description="Event types to receive (see docs/events.md); absent or empty: every type."
    )
    secret: OptionalSingleLine = Field(
        default=None,
        max_length=200,
        description="Standard Webhooks signing secret, `whsec_` + base64 of 24–64 bytes; generated when absent.",
    )
    description: Annotated[OptionalSingleLine, Field(max_length=200)] = None


class SubscriptionOut(BaseModel):
    id: UUID
    url: str
    types: list[str] | None
    description: str | None
    state: Literal["active", "paused"]
    paused_reason: str | None
    owner: str
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None = Field(description="Since when every attempt has failed (None: the last one succeeded).")
    last_success_at: datetime | None
    previous_secret_until: datetime | None = Field(
        default=None, description="After a rotation: until when deliveries are also signed with the previous secret."
    )
    waiting: int | None = Field(default=None, description="Deliveries waiting to be made.")


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="The signing secret. Shown once: keep it, it is never returned again.")


class SubscriptionList(BaseModel):
    items: list[SubscriptionOut]


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: OptionalSingleLine = Field(default=None, max_length=200, description="The new secret (generated when absent).")
    keep_previous_for: int = Field(
        default=86400, ge=0, le=7 * 86400, description="Seconds the old secret keeps signing beside the new one."
    )


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[OptionalSingleLine, Field(max_length=200)] = None


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_time: datetime = Field(alias="from", description="Replay every event whose time is at or after this (RFC 3339).")


class ReplayOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: UUID
    subscription_id: UUID
    from_time: datetime = Field(serialization_alias="from")
    state: Literal["running", "done", "cancelled", "failed"]
    enqueued: int = Field(description="Deliveries queued so far.")
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status: int | None
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    id: int
    subscription_id: UUID
    event_id: str = Field(description="The CloudEvents id, sent as `webhook-id` on every attempt.")
    subject: str = Field(description="The event's subject: the lead (or, for directory events, the person).")
    type: str
    event_time: datetime
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    replay_id: UUID | None


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class Resent(BaseModel):
    id: int
    status: Literal["pending"]


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time = Field(description="Local time, e.g. 22:00")
    end: time = Field(description="Local time, e.g. 08:00 (before start: the window spans midnight)")


class PreferencesIn(BaseModel):
    """How a person wants to hear from LeadFlow."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Channel] = Field(description="Where to send: email, wecom, dingtalk, feishu, feed.")
    quiet_hours: QuietHoursIn | None = None
    digest: bool = Field(default=False, description="One message a day (at `digest_at`) instead of one per event.")
    digest_at: time = time(9, 0)
    timezone: Annotated[SingleLine, Field(max_length=64)] = "Asia/Shanghai"
    language: Language = "zh-CN"


class PreferencesOut(PreferencesIn):
    rep_id: str
    custom: bool = Field(description="False: the defaults (the person set none).")


class PersonOut(BaseModel):
    rep_id: str
    display_name: str
    role: str
    team: str | None
    manager: str | None
    email: str | None
    phone: str | None
    active: bool


class FeedItemOut(BaseModel):
    id: int
    kind: str
    lead_id: str | None
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


class FeedPage(BaseModel):
    items: list[FeedItemOut]
    last_id: int = Field(description="Pass as `after` to get only newer items.")


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to: int = Field(ge=0, description="Mark every item up to this id read.")


class ReadOut(BaseModel):
    marked: int
