"""The stages of a run, in order. Each names the services it needs and runs independently of the others."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.context import Run
from bench.results import StageResult
from bench.stages import baselines, capture, claim, freshness, memory, notify, parking, replay, scaling


@dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]
    run: Callable[[Run, StageResult], Awaitable[None]]


def all_stages() -> list[Stage]:
    return [
        Stage("baselines", (), baselines.run_stage),
        Stage("capture", ("intake",), capture.run_stage),
        Stage("scaling-capture", ("intake",), scaling.capture_stage),
        Stage("claim", ("intake", "assignment"), claim.run_stage),
        Stage("freshness", ("intake", "analytics"), freshness.run_stage),
        Stage("replay", ("analytics",), replay.run_stage),
        Stage("parking", (), parking.run_stage),
        Stage("scaling-projection", ("analytics",), scaling.projection_stage),
        Stage("scaling-tick", ("assignment",), scaling.tick_stage),
        Stage("notify", ("notify",), notify.run_stage),
        Stage("memory", (), memory.run_stage),
    ]
