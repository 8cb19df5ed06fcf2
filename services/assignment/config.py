"""assignment's settings (the contract's rules table plus where the assignment rules live)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import PositiveInt, field_validator
from pydantic_settings import SettingsConfigDict

from services.assignment.domain.routing import AssignmentRules
from services.assignment.domain.rules import OwnershipRules
from shared.config import Duration, ServiceSettings

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.yaml")


class AssignmentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    assignment_port: int = 8002
    protection_period: Duration = timedelta(days=30)
    protection_extension: Duration = timedelta(days=30)
    first_contact_sla: Duration = timedelta(hours=48)
    follow_up_sla: Duration = timedelta(days=7)
    reclaim_cooldown: Duration = timedelta(days=7)
    max_leads_per_rep: PositiveInt = 200
    scheduler_tick: Duration = timedelta(seconds=10)
    scheduler_batch_size: PositiveInt = 500
    assignment_rules: Path = DEFAULT_RULES_FILE
    # Refuse to assign (or offboard) to a rep the people directory (the console) never announced.
    assignment_directory_required: bool = False

    @field_validator(
        "protection_period", "protection_extension", "first_contact_sla", "follow_up_sla", "reclaim_cooldown", "scheduler_tick"
    )
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    def ownership_rules(self) -> OwnershipRules:
        return OwnershipRules(
            protection_period=self.protection_period,
            protection_extension=self.protection_extension,
            first_contact_sla=self.first_contact_sla,
            follow_up_sla=self.follow_up_sla,
            reclaim_cooldown=self.reclaim_cooldown,
            max_leads_per_rep=self.max_leads_per_rep,
            directory_required=self.assignment_directory_required,
        )


def load_assignment_rules(path: Path) -> AssignmentRules:
    """Read and validate the rules file; a bad file stops the service at start, with the reason."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return AssignmentRules.model_validate(raw)
