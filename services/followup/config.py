"""followup's settings (``LEADFLOW_*`` environment variables)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from shared.config import Duration, ServiceSettings

DEFAULT_SOP = Path(__file__).with_name("sop.yaml")


class FollowupSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    followup_port: int = 8003
    # The SOP cadence per grade and the tasks per stage (YAML; see docs/followup.md).
    sop_config: Path = DEFAULT_SOP
    # Who manages which reps (YAML ``teams: [{manager, reps: [...]}]``); overdue tasks escalate there.
    teams_config: Path | None = None
    # Where an overdue task of a rep in no team escalates.
    escalation_manager: str = "sales-manager"
    scheduler_tick: Duration = timedelta(seconds=10)
    # Mirrors of the assignment service's recycling rules, to warn the owner before they apply.
    first_contact_sla: Duration = timedelta(hours=48)
    follow_up_sla: Duration = timedelta(days=7)
    recycle_reminder_lead: Duration = timedelta(days=1)
    # How many due tasks or reminders one scheduler tick handles at most (the rest on the next tick).
    due_batch_size: int = 500
