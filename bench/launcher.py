"""The services under test as real processes, on a database and a topic of their own.

Mirrors ``tests/e2e/conftest.py`` (without importing from tests): free ports, a fresh database on
the local PostgreSQL, a fresh 6-partition topic retained forever, a consumer-group prefix of its
own, a JWT secret of its own. :meth:`Environment.close` stops every process and drops what the run
created; it is synchronous so that it also runs after Ctrl-C or a crash of the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql

from shared.auth import mint_token

ROOT = Path(__file__).resolve().parents[1]
ALL_SERVICES = ("intake", "assignment", "followup", "analytics", "notify")
# The processes a service runs as, as `make up` runs them: intake's API and its outbox relay each on a
# core of their own. Each entry: process name, arguments after ``python -m services.<service>``.
PROCESSES = {"intake": (("intake-relay", ("relay",)), ("intake", ()))}
PARTITIONS = 6


def service_exists(service: str) -> bool:
    """A service "exists" once its composition root is in the tree; until then its stages are skipped."""
    return (ROOT / "services" / service / "main.py").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if the bench itself is killed, so no service outlives it.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def read_rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def read_cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, all its threads together, in seconds (ns resolution, from /proc)."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            total_ns += int((task / "schedstat").read_text().split()[0])
    return total_ns / 1e9


async def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs={"retention.ms": "-1"})])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


class Environment:
    def __init__(self, *, kafka: str, database_url: str, logs: Path, keep: bool = False) -> None:
        self.kafka = kafka
        self.base_database_url = database_url
        self.logs = logs
        self.keep = keep
        tag = uuid.uuid4().hex[:8]
        self.database = f"leadflow_bench_{tag}"
        self.database_url = urlunsplit(urlsplit(database_url)._replace(path=f"/{self.database}"))
        self.topic = f"leadflow.bench.{tag}"
        self.group_prefix = f"bench-{tag}"
        self.jwt_secret = secrets.token_urlsafe(32)
        names = [name for service in ALL_SERVICES for name, _ in self.processes_of(service)]
        self.ports = {name: free_port() for name in names}
        self.procs: dict[str, subprocess.Popen] = {}
        self.topics: list[str] = []
        self._database_created = False
        self._headers: dict[tuple[str, str], dict[str, str]] = {}

    # -- set-up and tear-down -------------------------------------------------------------------

    async def open(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with psycopg.connect(self.base_database_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        self._database_created = True
        await self.new_topic(self.topic)

    async def new_topic(self, name: str) -> str:
        await create_topic(self.kafka, name)
        self.topics.append(name)
        return name

    def close(self) -> None:
        for service in list(self.procs):
            self.stop(service)
        if self.keep:
            return
        if self.topics:
            with contextlib.suppress(Exception):
                asyncio.run(delete_topics(self.kafka, self.topics))
            with contextlib.suppress(Exception):  # the dead-letter topics consumers made, if they parked anything
                asyncio.run(delete_topics(self.kafka, [f"{topic}.dlq" for topic in self.topics]))
        if self._database_created:
            with (
                contextlib.suppress(Exception),
                psycopg.connect(self.base_database_url, autocommit=True, connect_timeout=10) as conn,
            ):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database)))

    # -- services -------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LEADFLOW_KAFKA_BOOTSTRAP": self.kafka,
            "LEADFLOW_DATABASE_URL": self.database_url,
            "LEADFLOW_TOPIC": self.topic,
            "LEADFLOW_CONSUMER_GROUP_PREFIX": self.group_prefix,
            "LEADFLOW_JWT_SECRET": self.jwt_secret,
            "LEADFLOW_LOG_LEVEL": "WARNING",
            "LEADFLOW_INTAKE_EMBEDDED_RELAY": "false",
            # notify delivers to the stage's receiver on this machine.
            "LEADFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            **{f"LEADFLOW_{name.upper().replace('-', '_')}_PORT": str(port) for name, port in self.ports.items()},
        }

    @staticmethod
    def processes_of(service: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return PROCESSES.get(service, ((service, ()),))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def running(self, service: str) -> bool:
        proc = self.procs.get(service)
        return proc is not None and proc.poll() is None

    def start(self, service: str, timeout: float = 90) -> None:
        """Start ``python -m services.<service>`` (and its other processes) and wait until each answers
        ``/readyz`` with 200."""
        for name, args in self.processes_of(service):
            log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
            log.close()
        for name, _ in self.processes_of(service):
            self._wait_ready(name, timeout)

    def _wait_ready(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url(name) + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after {timeout}s:\n{self.tail(name)}")

    def stop(self, service: str) -> None:
        proc = self.procs.pop(service, None)
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def rss_mb(self, service: str) -> tuple[float, float]:
        return read_rss_mb(self.procs[service].pid)

    def cpu_seconds(self, service: str) -> float:
        return read_cpu_seconds(self.procs[service].pid)

    def tail(self, service: str, lines: int = 30) -> str:
        path = self.logs / f"{service}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def headers(self, role: str, sub: str) -> dict[str, str]:
        key = (role, sub)
        if key not in self._headers:
            self._headers[key] = {"Authorization": f"Bearer {mint_token(self.jwt_secret, sub, role)}"}  # type: ignore[arg-type]
        return self._headers[key]
