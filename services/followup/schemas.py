"""followup's HTTP request and response models (the public API contract, shown in OpenAPI)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.followup.domain.tasks import Task, TaskStatus
from shared.events import Channel, Grade, Stage
from shared.text import FreeText, OptionalFreeText, OptionalSingleLine, SingleLine


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return text or None


class FollowUpIn(BaseModel):
    """One contact with the customer. ``stage`` is the lead's stage after it (default: unchanged,
    except that the first contact moves an ``assigned`` lead to ``contacted``)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    summary: FreeText = Field(min_length=1, max_length=5000)
    pain_points: OptionalFreeText = Field(default=None, max_length=5000)
    objections: OptionalFreeText = Field(default=None, max_length=5000)
    next_step: OptionalFreeText = Field(default=None, max_length=2000)
    next_follow_up_at: AwareDatetime | None = Field(default=None, description="Must be in the future (with a time zone).")
    stage: Stage | None = None
    tags: list[SingleLine] = Field(default_factory=list, max_length=50)
    won_amount: float | None = Field(default=None, ge=0, description="Only when the lead becomes won.")
    currency: OptionalSingleLine = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217, only when the lead becomes won."
    )
    lost_reason: OptionalFreeText = Field(default=None, max_length=1000, description="Required when the lead becomes lost.")

    @field_validator("summary")
    @classmethod
    def _summary_not_blank(cls, value: str) -> str:
        text = _clean(value)
        if text is None:
            raise ValueError("must not be blank")
        return text

    @field_validator("pain_points", "objections", "next_step", "lost_reason")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return _clean(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags = [tag.strip() for tag in value]
        if any(not tag or len(tag) > 50 for tag in tags):
            raise ValueError("each tag must be 1 to 50 characters")
        return list(dict.fromkeys(tags))

    @field_validator("won_amount")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class FollowUpCreated(BaseModel):
    follow_up_id: str
    lead_id: str
    stage: Stage


class FollowUpOut(BaseModel):
    follow_up_id: str
    rep_id: str
    channel: Channel
    summary: str
    pain_points: str | None
    objections: str | None
    next_step: str | None
    next_follow_up_at: datetime | None
    stage: Stage
    tags: list[str]
    logged_at: datetime


class StageMoveOut(BaseModel):
    from_stage: Stage
    to_stage: Stage
    changed_by: str | None
    at: datetime


class TimelineOut(BaseModel):
    """The lead as followup sees it: owner, grade, stage, every contact and stage move, oldest first."""

    lead_id: str
    owner: str | None
    grade: Grade | None
    stage: Stage
    follow_ups: list[FollowUpOut]
    stage_history: list[StageMoveOut]
    outcome: dict[str, Any] | None


class TaskOut(BaseModel):
    task_id: str
    lead_id: str
    rep_id: str
    kind: str = Field(description="first_contact, cadence, agreed_follow_up, recycle_warning, or a stage task of the SOP")
    title: str
    due_at: datetime
    scheduled_at: datetime
    status: TaskStatus
    escalated_to: str | None = None
    overdue_at: datetime | None = None
    completed_at: datetime | None = None
    on_time: bool | None = None
    follow_up_id: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None

    @classmethod
    def of(cls, lead_id: str, task: Task) -> TaskOut:
        return cls(
            task_id=task.task_id,
            lead_id=lead_id,
            rep_id=task.rep_id,
            kind=task.kind,
            title=task.title,
            due_at=task.due_at,
            scheduled_at=task.scheduled_at,
            status=task.status,
            escalated_to=task.escalated_to,
            completed_at=task.completed_at,
            on_time=task.on_time,
            follow_up_id=task.follow_up_id,
            cancel_reason=task.cancel_reason,
        )


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page.")
