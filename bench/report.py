"""The printed table and the JSON file of a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.results import StageResult


def number(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(stages: list[StageResult]) -> str:
    rows = [("stage", "figure", "value", "unit", "baseline (same run)", "ratio", "note")]
    for stage in stages:
        if stage.status != "ok":
            rows.append((stage.stage, stage.status.upper(), "", "", "", "", stage.reason.splitlines()[0] if stage.reason else ""))
        for figure in stage.figures:
            baseline = f"{figure.baseline} = {number(figure.baseline_value)}" if figure.baseline else ""
            ratio = f"{figure.ratio:.3g}×" if figure.ratio is not None else ""
            rows.append((stage.stage, figure.name, number(figure.value), figure.unit, baseline, ratio, figure.note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(w) if i in (2, 5) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=False))]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    alerts = [f"!! {stage.stage}: {alert}" for stage in stages for alert in stage.alerts]
    return "\n".join(lines + (["", *alerts] if alerts else []))


def write_json(folder: Path, stamp: str, document: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{stamp}.json"
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    return path
