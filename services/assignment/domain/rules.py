"""The time rules of ownership (from settings) and the pipeline facts they depend on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import STAGES

CLOSED_STAGES = frozenset({"won", "lost"})


@dataclass(frozen=True)
class OwnershipRules:
    """The contract's rules table; every duration comes from a ``LEADFLOW_*`` setting."""

    protection_period: timedelta = timedelta(days=30)
    protection_extension: timedelta = timedelta(days=30)
    first_contact_sla: timedelta = timedelta(hours=48)
    follow_up_sla: timedelta = timedelta(days=7)
    reclaim_cooldown: timedelta = timedelta(days=7)
    max_leads_per_rep: int = 200
    # Assigning (or offboarding) to a rep the people directory never announced is refused (RepJoined).
    directory_required: bool = False


@dataclass(frozen=True)
class Deadline:
    """When the lead goes back to the pool unless something happens first, and with which reason."""

    at: datetime
    reason: str


def earliest(*deadlines: Deadline) -> Deadline:
    return min(deadlines, key=lambda d: d.at)


def is_forward(current: str, new: str) -> bool:
    """Stages only move forward, except to ``lost``; ``won`` and ``lost`` are final."""
    if current in CLOSED_STAGES:
        return False
    if new == "lost":
        return True
    return STAGES.index(new) > STAGES.index(current)


def reached_quoted(stage: str) -> bool:
    """``quoted`` or any later open-or-won stage (a jump past ``quoted`` still counts as progress)."""
    return stage != "lost" and STAGES.index(stage) >= STAGES.index("quoted")
