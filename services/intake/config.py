"""intake's settings."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.config import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    intake_port: int = 8001
    default_region: str = "CN"
