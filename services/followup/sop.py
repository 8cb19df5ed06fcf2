"""Loading the SOP cadence file into the domain's :class:`Sop` (checked at start-up, with clear errors)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.followup.domain.cadence import GradeCadence, Sop, StageTask
from shared.config import Duration
from shared.events import Grade, Stage


class InvalidSop(ValueError):
    pass


class _Cadence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_contact: Duration
    every: Duration


class _StageTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    after: Duration


class _SopFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_grade: Grade = "B"
    grades: dict[Grade, _Cadence]
    stages: dict[Stage, _StageTask] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_grade_has_a_cadence(self) -> _SopFile:
        if self.default_grade not in self.grades:
            raise ValueError(f"default_grade {self.default_grade} has no cadence under grades")
        for name, stage in self.stages.items():
            if name in ("new", "assigned", "won", "lost"):
                raise ValueError(f"stage {name}: tasks are planned only for stages a contact enters while the deal is open")
            if stage.after.total_seconds() <= 0:
                raise ValueError(f"stage {name}: after must be positive")
        for grade, cadence in self.grades.items():
            if cadence.first_contact.total_seconds() <= 0 or cadence.every.total_seconds() <= 0:
                raise ValueError(f"grade {grade}: durations must be positive")
        return self


def parse_sop(text: str) -> Sop:
    try:
        raw = _SopFile.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise InvalidSop(f"invalid SOP configuration: {exc}") from exc
    return Sop(
        grades={grade: GradeCadence(c.first_contact, c.every) for grade, c in raw.grades.items()},
        stages={stage: StageTask(t.kind, t.title, t.after) for stage, t in raw.stages.items()},
        default_grade=raw.default_grade,
    )


def load_sop(path: Path) -> Sop:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidSop(f"cannot read the SOP configuration {path}: {exc}") from exc
    return parse_sop(text)
