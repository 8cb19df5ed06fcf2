"""Facts about the machine and the software a run measured, recorded with its figures."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from bench.launcher import ROOT


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    return result.stdout.strip()


def _kafka_version() -> str:
    # The broker does not report its release over the protocol; the local stack runs it from versioned jars.
    result = subprocess.run(["bash", "deploy/local/stack.sh", "status"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    match = re.search(r"kafka-(\d+\.\d+\.\d+)", result.stdout)
    return match.group(1) if match else "unknown (not the local stack)"


def _postgres_version(database_url: str) -> str:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return row[0] if row else "unknown"


def machine_facts(database_url: str) -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": [round(load1, 2), round(load5, 2)],
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": _kafka_version(),
        "postgresql": _postgres_version(database_url),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
