"""analytics' settings."""

from __future__ import annotations

from datetime import timedelta

from pydantic_settings import SettingsConfigDict

from shared.config import Duration, ServiceSettings


class AnalyticsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    analytics_port: int = 8004
    # The schema that holds the catalog of projection instances and the serving views;
    # each instance's tables live in a schema of their own named ``<analytics_schema>_r<N>``.
    analytics_schema: str = "analytics"
    # How often the service looks for instances promoted by a replay, to follow them live.
    catalog_poll_interval: Duration = timedelta(seconds=2)
    # Streaming (faust): a lead captured and not claimed within this long is a hot lead going cold.
    hot_lead_window: Duration = timedelta(minutes=15)
    # Streaming (faust): activity is counted per window of this size, by event type.
    stream_window: Duration = timedelta(minutes=1)
    analytics_streams_port: int = 8014
