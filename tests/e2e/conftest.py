"""End-to-end: the services as real processes on the real broker and database.

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
from collections.abc import Iterator
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
ALL_SERVICES = ("intake", "assignment", "followup", "analytics", "notify")
# As `make up` runs them: intake records in one process and publishes from another (its relay).
PROCESSES = {"intake": (("intake-relay", ("relay",)), ("intake", ()))}

# Short durations so time-based rules happen within a test.
E2E_RULES = {
    "LEADFLOW_SCHEDULER_TICK": "500ms",
    "LEADFLOW_FIRST_CONTACT_SLA": "6s",
    "LEADFLOW_FOLLOW_UP_SLA": "1h",
    "LEADFLOW_PROTECTION_PERIOD": "30d",
    "LEADFLOW_RECLAIM_COOLDOWN": "1h",
    "LEADFLOW_RELAY_POLL_INTERVAL": "100ms",
    "LEADFLOW_SOP_CONFIG": str(ROOT / "tests" / "e2e" / "followup_sop.yaml"),
    "LEADFLOW_RECYCLE_REMINDER_LEAD": "3s",
    # notify: receivers run on this machine; retries come quickly; the ticker looks often.
    "LEADFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "LEADFLOW_WEBHOOK_RETRY_BASE": "100ms",
    "LEADFLOW_WEBHOOK_RETRY_CAP": "500ms",
    "LEADFLOW_WEBHOOK_TIMEOUT": "3s",
    "LEADFLOW_NOTIFY_TICK": "300ms",
    "LEADFLOW_NOTIFY_TIMEZONE": "UTC",
}


def _free_port() -> int:
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

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @staticmethod
    def processes_of(service: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return PROCESSES.get(service, ((service, ()),))

    def start(self, name: str) -> None:
        """Start one process: a service, or another process of one (``intake-relay``)."""
        service, args = next((s, a) for s in ALL_SERVICES for n, a in self.processes_of(s) if n == name)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}", *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, service: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[service]
            if proc.poll() is not None:
                raise RuntimeError(f"{service} exited with {proc.returncode}:\n{self.tail(service)}")
            try:
                if httpx.get(self.url(service) + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{service} not ready after {timeout}s:\n{self.tail(service)}")

    def stop(self, service: str, kill: bool = False) -> None:
        proc = self.procs.pop(service, None)
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

    def tail(self, service: str, lines: int = 40) -> str:
        path = self.logs / f"{service}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _fresh_database(base_url: str) -> str:
    name = f"leadflow_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def services(infra, tmp_path_factory) -> Iterator[Services]:
    # LEADFLOW_E2E_SERVICES=intake,assignment runs a subset while a service is being built.
    wanted = [s for s in os.environ.get("LEADFLOW_E2E_SERVICES", ",".join(ALL_SERVICES)).split(",") if s]
    processes = [name for service in wanted for name, _ in Services.processes_of(service)]
    ports = {name: _free_port() for name in processes}
    topic = f"leadflow.e2e.{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(infra["kafka"], topic, partitions=6))
    mailbox = Mailbox().start()
    env = {
        **os.environ,
        **E2E_RULES,
        "LEADFLOW_KAFKA_BOOTSTRAP": infra["kafka"],
        "LEADFLOW_DATABASE_URL": _fresh_database(infra["database_url"]),
        "LEADFLOW_TOPIC": topic,
        "LEADFLOW_CONSUMER_GROUP_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
        "LEADFLOW_JWT_SECRET": DEV_JWT_SECRET,
        "LEADFLOW_LOG_LEVEL": "INFO",
        "LEADFLOW_INTAKE_EMBEDDED_RELAY": "false",
        "LEADFLOW_SMTP_URL": mailbox.url,
        **{f"LEADFLOW_{name.upper().replace('-', '_')}_PORT": str(port) for name, port in ports.items()},
    }
    running = Services(env, tmp_path_factory.mktemp("service-logs"), ports, mailbox)
    try:
        for name in processes:
            running.start(name)
        for name in processes:
            running.wait_ready(name)
        yield running
    finally:
        for service in list(running.procs):
            running.stop(service)
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
