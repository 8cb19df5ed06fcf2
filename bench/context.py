"""What the stages of one run share: the environment, the sizes, the baselines, memory snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.launcher import Environment
from bench.sizes import Sizes
from bench.synthetic import LeadFactory


@dataclass
class Run:
    env: Environment
    sizes: Sizes
    baselines: dict[str, float] = field(default_factory=dict)
    memory: dict[str, dict[str, float]] = field(default_factory=dict)  # phase → service → MiB
    leads: LeadFactory = field(default_factory=LeadFactory)
    captured: int = 0  # leads intake recorded in this run (the size of its store)
    shared: dict[str, Any] = field(default_factory=dict)  # results one stage computes and another reuses

    def client(self, connections: int = 20, timeout: float = 120.0) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(limits=limits, timeout=timeout)

    def snapshot_memory(self, phase: str) -> dict[str, float]:
        """Resident memory of every running service now, recorded under ``phase``."""
        snapshot = {
            service: round(self.env.rss_mb(service)[0], 1) for service in list(self.env.procs) if self.env.running(service)
        }
        self.memory[phase] = snapshot
        return snapshot
