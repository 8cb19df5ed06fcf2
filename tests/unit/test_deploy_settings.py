"""Every LEADFLOW_* variable the deployment files set is one a LeadFlow process really reads."""

from __future__ import annotations

import importlib
import runpy
from pathlib import Path

from pydantic_settings import BaseSettings

from shared.config import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "assignment", "followup", "analytics", "notify", "console")
# Read by the image's entrypoint and healthcheck, not by a settings class.
IMAGE_VARIABLES = {"LEADFLOW_SERVICE"}


def variables_of(settings: type[BaseSettings]) -> set[str]:
    prefix = settings.model_config.get("env_prefix", "")
    return {f"{prefix}{field}".upper() for field in settings.model_fields}


def settings_variables() -> set[str]:
    """The LEADFLOW_* names that the services' settings and the topic bootstrap read."""
    known = variables_of(ServiceSettings) | IMAGE_VARIABLES
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.config")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, ServiceSettings):
                known |= variables_of(value)
    bootstrap = runpy.run_path(str(ROOT / "deploy" / "docker" / "topic_bootstrap.py"))["BootstrapSettings"]
    return known | variables_of(bootstrap)


def test_the_contract_rules_are_settings_of_the_services():
    rules = {"PROTECTION_PERIOD", "FIRST_CONTACT_SLA", "FOLLOW_UP_SLA", "RECLAIM_COOLDOWN", "MAX_LEADS_PER_REP", "SCHEDULER_TICK"}
    assert {f"LEADFLOW_{rule}" for rule in rules} <= settings_variables()


def test_the_intake_relay_switches_are_settings_of_intake():
    # compose and the manifests run intake's relay apart: its port, and the API with its own relay off.
    assert {"LEADFLOW_INTAKE_RELAY_PORT", "LEADFLOW_INTAKE_EMBEDDED_RELAY"} <= settings_variables()


def test_a_misspelt_variable_is_not_known():
    assert "LEADFLOW_PROTECTON_PERIOD" not in settings_variables()
