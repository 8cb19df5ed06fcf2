"""console's settings (``LEADFLOW_*`` environment variables)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from shared.config import Duration, ServiceSettings

STATIC = Path(__file__).with_name("static")


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    console_port: int = 8000
    # Where the console finds the other services (it talks to them over HTTP only, as the signed-in user).
    intake_url: str = "http://127.0.0.1:8001"
    assignment_url: str = "http://127.0.0.1:8002"
    followup_url: str = "http://127.0.0.1:8003"
    analytics_url: str = "http://127.0.0.1:8004"
    # A session unused this long is over (sign in again, and come back where you were).
    console_session_idle: Duration = timedelta(minutes=30)
    # However busy, a session ends this long after sign-in.
    console_session_max: Duration = timedelta(hours=12)
    # Mark the session cookie Secure: set it whenever the console is reached over TLS (a proxy in front).
    console_cookie_secure: bool = False
    # Lifetime of the JWTs the console mints for the signed-in user, per call to a service.
    console_token_ttl: Duration = timedelta(minutes=5)
    # Failed sign-ins allowed per username, and per client address, within the window; then refused until it passes.
    console_login_failures_per_user: int = 5
    console_login_failures_per_address: int = 30
    console_login_window: Duration = timedelta(minutes=15)
    # The time zone for a browser that has not told its own.
    console_default_timezone: str = "Asia/Shanghai"
    # How long a page waits, after a command, for the read models it shows to reflect it.
    console_read_your_writes: Duration = timedelta(seconds=3)
    console_static_dir: Path = STATIC
