"""What a run produces: figures (each with its same-run baseline and ratio) grouped by stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bench.stats import ratio

Status = Literal["ok", "unavailable", "failed"]


@dataclass
class Figure:
    """One measured number; ``baseline`` names the same-run figure it is compared with."""

    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    note: str = ""


@dataclass
class StageResult:
    stage: str
    status: Status = "ok"
    reason: str = ""
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, *, note: str = "") -> Figure:
        figure = Figure(name, value, unit, note=note)
        self.figures.append(figure)
        return figure

    def compare(
        self, name: str, value: float, unit: str, baseline: str, baselines: dict[str, float], *, note: str = ""
    ) -> Figure:
        """A figure next to a baseline of this run (``None`` ratio if that baseline was not measured)."""
        base = baselines.get(baseline)
        figure = Figure(name, value, unit, baseline=baseline, baseline_value=base, ratio=ratio(value, base), note=note)
        self.figures.append(figure)
        return figure

    def alert(self, message: str) -> None:
        self.alerts.append(message)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)
