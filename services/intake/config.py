"""intake's settings, and the scoring rules file they point at."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.intake.scoring import ScoringRules
from shared.config import ServiceSettings

DEFAULT_SCORING_RULES = Path(__file__).with_name("scoring_rules.yaml")


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    intake_port: int = 8001
    intake_relay_port: int = Field(default=8011, description="Port of the relay process (`python -m services.intake relay`)")
    intake_embedded_relay: bool = Field(
        default=True,
        description="Publish from the API process; false when a relay process of its own publishes (make up, compose, k8s)",
    )
    default_region: str = Field(default="CN", description="Region assumed for phone numbers written without a country code")
    scoring_rules: Path = Field(default=DEFAULT_SCORING_RULES, description="YAML file with the scoring and grading rules")
    intake_max_lead_bytes: int = Field(default=64 * 1024, description="Largest body of POST /leads and /signals")
    intake_max_batch_bytes: int = Field(default=8 * 1024 * 1024, description="Largest body of POST /leads/batch")
    intake_max_batch_items: int = Field(default=1000, ge=1, description="Most items in one POST /leads/batch")
    intake_max_import_bytes: int = Field(default=512 * 1024 * 1024, description="Largest CSV body of POST /leads/import")
    intake_import_chunk_rows: int = Field(default=1000, ge=1, description="CSV rows recorded per event-store transaction")


def load_scoring_rules(path: Path) -> ScoringRules:
    """Read and validate the rules file; a wrong file stops the service at start with a clear message."""
    with path.open(encoding="utf-8") as file:
        return ScoringRules.model_validate(yaml.safe_load(file) or {})
