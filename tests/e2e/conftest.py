"""End-to-end: the services and the console as real processes on the real broker and database.

Each test session gets a database and a topic of its own, short time rules (seconds, not days)
so that recycling and overdue escalation can be watched, and free ports of its own, so it never
disturbs a stack started with ``make up`` nor another test run. notify mails to a real SMTP server the session
starts (``services.mailbox``), and may deliver webhooks to receivers on this machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from shared.auth import mint_token
from shared.config import DEV_JWT_SECRET
from tests.conftest import create_topic
from tests.mailbox import Mailbox

ROOT = Path(__file__).resolve().parents[2]
ALL_SERVICES = ("intake", "assignment", "followup", "analytics", "notify", "console")
# The console reaches the other services over HTTP at these settings.
CONSOLE_UPSTREAMS = ("intake", "assignment", "followup", "analytics")


@dataclass(frozen=True)
class Process:
    """How one process of a service is run, and the page that says it is ready."""

    service: str
    module: str
    args: tuple[str, ...] = ()
    ready: str = "/readyz"


# Every process of a deployment, as `make up` runs them: intake records in one process and publishes from
# another (its relay); analytics' live windowed aggregates run in a faust worker (no database, no /readyz).
PROCESSES = {
    "intake-relay": Process("intake", "services.intake", ("relay",)),
    "intake": Process("intake", "services.intake"),
    "assignment": Process("assignment", "services.assignment"),
    "followup": Process("followup", "services.followup"),
    "analytics": Process("analytics", "services.analytics"),
    "analytics-streams": Process("analytics", "services.analytics.streams", ("worker", "-l", "info"), ready="/healthz"),
    "notify": Process("notify", "services.notify"),
    "console": Process("console", "services.console"),
}
# The end-to-end tests leave the streams worker out (tests/integration/test_analytics_streams.py covers it).
E2E_PROCESSES = tuple(name for name in PROCESSES if name != "analytics-streams")

# Short durations so time-based rules happen within a test.
E2E_RULES = {
    # Test machines run every service and a browser on two cores: an upstream event may take longer than the
    # default 500 ms grace to be published, and a view of now must still show it.
    "LEADFLOW_CATCH_UP_GRACE": "1s",
    "LEADFLOW_SCHEDULER_TICK": "500ms",
    "LEADFLOW_FIRST_CONTACT_SLA": "6s",
    "LEADFLOW_FOLLOW_UP_SLA": "1h",
    "LEADFLOW_PROTECTION_PERIOD": "30d",
    "LEADFLOW_RECLAIM_COOLDOWN": "1h",
    "LEADFLOW_RELAY_POLL_INTERVAL": "100ms",
    "LEADFLOW_SOP_CONFIG": str(ROOT / "tests" / "e2e" / "followup_sop.yaml"),
    "LEADFLOW_RECYCLE_REMINDER_LEAD": "3s",
    # The console's browser tests sign in often from one address.
    "LEADFLOW_CONSOLE_LOGIN_FAILURES_PER_ADDRESS": "1000",
    # notify: receivers run on this machine; retries come quickly; the ticker looks often.
    "LEADFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "LEADFLOW_WEBHOOK_RETRY_BASE": "100ms",
    "LEADFLOW_WEBHOOK_RETRY_CAP": "500ms",
    "LEADFLOW_WEBHOOK_TIMEOUT": "3s",
    "LEADFLOW_NOTIFY_TICK": "300ms",
    "LEADFLOW_NOTIFY_TIMEZONE": "UTC",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Services:
    def __init__(self, env: dict[str, str], logs: Path, ports: dict[str, int], mailbox: Mailbox | None = None) -> None:
        self.env = env
        self.logs = logs
        self.ports = ports
        self.mailbox = mailbox
        self.procs: dict[str, subprocess.Popen] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def ready_url(self, name: str) -> str:
        return self.url(name) + PROCESSES[name].ready

    def start(self, name: str) -> None:
        """Start one process: a service, or another process of one (``intake-relay``, ``analytics-streams``)."""
        process = PROCESSES[name]
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", process.module, *process.args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
            try:
                if httpx.get(self.ready_url(name), timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after {timeout}s:\n{self.tail(name)}")

    def stop(self, name: str, kill: bool = False) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A command of the project (``python -m ...``) with the services' settings, e.g. the console's CLI."""
        return subprocess.run(
            [sys.executable, "-m", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextmanager
def running_processes(
    names: Iterable[str],
    *,
    kafka: str,
    database_url: str,
    topic: str,
    logs: Path,
    rules: dict[str, str],
    mailbox: Mailbox | None = None,
) -> Iterator[Services]:
    """``names`` (keys of PROCESSES) started on free ports against ``kafka``, ``database_url`` and ``topic``
    (and notify's e-mail to ``mailbox``), all ready; stopped (SIGTERM) on the way out."""
    names = list(names)
    ports = {name: free_port() for name in names}
    env = {
        **os.environ,
        **rules,
        "LEADFLOW_KAFKA_BOOTSTRAP": kafka,
        "LEADFLOW_DATABASE_URL": database_url,
        "LEADFLOW_TOPIC": topic,
        "LEADFLOW_CONSUMER_GROUP_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
        "LEADFLOW_JWT_SECRET": DEV_JWT_SECRET,
        "LEADFLOW_LOG_LEVEL": "INFO",
        "LEADFLOW_INTAKE_EMBEDDED_RELAY": "false",
        **{f"LEADFLOW_{name.upper().replace('-', '_')}_PORT": str(port) for name, port in ports.items()},
        **{f"LEADFLOW_{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}" for name in CONSOLE_UPSTREAMS if name in ports},
        **({"LEADFLOW_SMTP_URL": mailbox.url} if mailbox is not None else {}),
    }
    running = Services(env, logs, ports, mailbox)
    try:
        for name in names:
            running.start(name)
        for name in names:
            running.wait_ready(name)
        yield running
    finally:
        for name in list(running.procs):
            running.stop(name)


def fresh_database(base_url: str) -> str:
    """A new database on the server of ``base_url``; its URL."""
    name = f"leadflow_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def services(infra, tmp_path_factory) -> Iterator[Services]:
    # LEADFLOW_E2E_SERVICES=intake,assignment runs a subset while a service is being built.
    wanted = [s for s in os.environ.get("LEADFLOW_E2E_SERVICES", ",".join(ALL_SERVICES)).split(",") if s]
    topic = f"leadflow.e2e.{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(infra["kafka"], topic, partitions=6))
    asyncio.run(create_topic(infra["kafka"], f"{topic}.dlq", partitions=1))  # as deploy/ creates it beside the topic
    mailbox = Mailbox().start()
    try:
        with running_processes(
            (name for name in E2E_PROCESSES if PROCESSES[name].service in wanted),
            kafka=infra["kafka"],
            database_url=fresh_database(infra["database_url"]),
            topic=topic,
            logs=tmp_path_factory.mktemp("service-logs"),
            rules=E2E_RULES,
            mailbox=mailbox,
        ) as running:
            yield running
    finally:
        mailbox.stop()


def token(role: str, sub: str) -> str:
    return mint_token(DEV_JWT_SECRET, sub, role)  # type: ignore[arg-type]


def auth(role: str, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, sub)}"}


def eventually(check, timeout: float = 20.0, interval: float = 0.25):
    """Retry ``check`` until it returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    if last:
        raise last
    raise AssertionError("condition not met in time")


# The console's browser fixtures, defined once here for every test module (one Playwright open at a time).
from tests.e2e.browser import browser, console  # noqa: E402, F401
