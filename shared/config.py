"""Settings common to every service, read from ``LEADFLOW_*`` environment variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import BeforeValidator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.supervisor import HealthRules

DEV_JWT_SECRET = "leadflow-local-dev-secret-change-me"
DEFAULT_DATABASE_URL = "postgresql://leadflow:leadflow@localhost:5433/leadflow"
DEFAULT_TOPIC = "leadflow.lead-events"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``90s``, ``48h``, ``30d``, ``1.5h``, ``250ms`` (or a number of seconds, or a timedelta)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 48h, 30d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


# Settings eventsourcing reads from the environment, bare or prefixed with an application's name
# (``ASSIGNMENT_PERSISTENCE_MODULE``). LeadFlow builds them from its own settings only; one found in the
# environment means someone expects it to work, and it would not, so start-up refuses it by name.
_FOREIGN_STORE_SETTING = re.compile(
    r"^(?:[A-Z0-9]+_)*(?:PERSISTENCE_MODULE|INFRASTRUCTURE_FACTORY|POSTGRES_[A-Z_]+|SQLITE_[A-Z_]+"
    r"|SINGLE_ROW_TRACKING|CIPHER_TOPIC|CIPHER_KEY|COMPRESSOR_TOPIC|MAPPER_TOPIC|TRANSCODER_TOPIC"
    r"|PROCESS_RECORDER_TOPIC|CREATE_TABLE|IS_SNAPSHOTTING_ENABLED|AGGREGATE_CACHE_[A-Z_]+)$"
)


class ForeignSetting(ValueError):
    """An environment variable outside LeadFlow's settings that would change how events are stored."""


def refuse_foreign_settings(environ: Mapping[str, str]) -> None:
    """Stop start-up when the environment carries event-store settings that are not LeadFlow's."""
    found = sorted(k for k in environ if not k.startswith("LEADFLOW_") and _FOREIGN_STORE_SETTING.match(k))
    if found:
        raise ForeignSetting(
            f"refusing to start: {', '.join(found)} would configure the event store outside LeadFlow's settings;"
            " unset it (the database is LEADFLOW_DATABASE_URL, everything else is fixed by LeadFlow)"
        )


class ServiceSettings(BaseSettings):
    """What every LeadFlow service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    env: str = "development"
    kafka_bootstrap: str = "localhost:9092"
    database_url: str = DEFAULT_DATABASE_URL
    topic: str = DEFAULT_TOPIC
    jwt_secret: str = DEV_JWT_SECRET
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    db_pool_size: int = 10
    relay_batch_size: int = 2000
    relay_poll_interval: Duration = timedelta(milliseconds=200)
    consumer_batch_size: int = 1000
    # Aggregates kept in memory per service; bounds memory (the goal is < 200 MB per service).
    aggregate_cache_size: int = 5000
    consumer_group_prefix: str = "leadflow"
    # A worker with work waiting and no progress for this long makes the service unready.
    worker_stall_after: Duration = timedelta(seconds=30)
    # This many restarts within the window: crash-looping (unready).
    worker_crash_loop_restarts: int = 3
    worker_crash_loop_window: Duration = timedelta(seconds=60)
    # A request that depends on what the service has not consumed (or projected) yet waits at most this long
    # (the contract: at most 2 s) before it decides, or answers ``not-yet-seen``.
    catch_up_timeout: Duration = timedelta(seconds=2)
    # How long after a request an event recorded upstream before it is still waited for: it may be in its
    # producer's outbox, not on the topic yet (relays publish within tens of milliseconds).
    catch_up_grace: Duration = timedelta(milliseconds=500)

    def worker_health_rules(self) -> HealthRules:
        return HealthRules(
            crash_loop_restarts=self.worker_crash_loop_restarts,
            crash_loop_window=self.worker_crash_loop_window.total_seconds(),
            stall_after=self.worker_stall_after.total_seconds(),
        )

    def consumer_group(self, service: str) -> str:
        return f"{self.consumer_group_prefix}-{service}"

    @model_validator(mode="after")
    def _bounded_catch_up(self) -> ServiceSettings:
        if not timedelta(0) < self.catch_up_timeout <= timedelta(seconds=2):
            raise ValueError("LEADFLOW_CATCH_UP_TIMEOUT must be more than 0 and at most 2s")
        if not timedelta(0) <= self.catch_up_grace <= self.catch_up_timeout:
            raise ValueError("LEADFLOW_CATCH_UP_GRACE must be between 0 and LEADFLOW_CATCH_UP_TIMEOUT")
        return self

    @model_validator(mode="after")
    def _refuse_dev_secret_outside_development(self) -> ServiceSettings:
        if self.env != "development" and self.jwt_secret == DEV_JWT_SECRET:
            raise ValueError("LEADFLOW_JWT_SECRET must be set outside development")
        return self

    def postgres_params(self) -> dict[str, str]:
        """The database URL split into the parts eventsourcing's ``POSTGRES_*`` settings take."""
        url = urlsplit(self.database_url)
        if url.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"LEADFLOW_DATABASE_URL must be a postgresql:// URL, got {url.scheme!r}")
        return {
            "host": url.hostname or "localhost",
            "port": str(url.port or 5432),
            "user": unquote(url.username or "postgres"),
            "password": unquote(url.password or ""),
            "dbname": url.path.lstrip("/") or "postgres",
        }
