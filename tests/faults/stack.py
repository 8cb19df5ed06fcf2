"""A Kafka broker and a PostgreSQL server of the fault suite's own, which it SIGKILLs and restarts.

They are the local stack (deploy/local/stack.sh) in a directory and on ports of their own
(``LEADFLOW_STACK_DIR`` and the port overrides), so the stack that ``make up`` and ``make test`` use
is never touched, and a fresh machine needs nothing but what stack.sh already installs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import ROOT, free_port

STACK_SH = ROOT / "deploy" / "local" / "stack.sh"
# A broker that was SIGKILLed recovers its logs on start: 12 s were seen here, so far below stack.sh's own limit.
UP_TIMEOUT = 180


class PrivateStack:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.kafka_port, self.postgres_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "LEADFLOW_STACK_DIR": str(directory),
            "LEADFLOW_KAFKA_PORT": str(self.kafka_port),
            "LEADFLOW_KAFKA_CONTROLLER_PORT": str(free_port()),
            "LEADFLOW_PG_PORT": str(self.postgres_port),
        }

    @property
    def kafka(self) -> str:
        return f"localhost:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://leadflow:leadflow@localhost:{self.postgres_port}/leadflow"

    def _run(self, command: str) -> None:
        done = subprocess.run(["bash", str(STACK_SH), command], env=self.env, capture_output=True, text=True, timeout=UP_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"stack.sh {command} failed ({done.returncode}):\n{done.stderr[-3000:]}")

    def up(self) -> None:
        """Start whatever of the two is not running (stack.sh up is idempotent) and wait until it answers."""
        self._run("up")

    def down(self) -> None:
        self._run("down")

    def clean(self) -> None:
        self._run("clean")

    def kill_kafka(self) -> None:
        pid = int((self.directory / "kafka" / "kafka.pid").read_text())
        _kill_and_wait([pid])

    def kill_postgres(self) -> None:
        """SIGKILL the postmaster and every process of the server at once, as a crash of its machine would."""
        pid_file = self.directory / "pg" / "data" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        _kill_and_wait([postmaster, *_children_of(postmaster)])
        # A dead postmaster not reaped yet still passes kill(pid, 0), which PostgreSQL takes for a
        # running server: its lock file would refuse the restart.
        if _alive(postmaster):
            pid_file.unlink()


def _children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (dead, holding no port, file or shared memory any more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill_and_wait(pids: list[int], timeout: float = 30) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} still alive {timeout}s after SIGKILL")
        time.sleep(0.05)
