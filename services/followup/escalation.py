"""To whom an overdue task escalates: the rep's manager per the teams file, else a default manager."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class InvalidTeams(ValueError):
    pass


class _Team(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manager: str = Field(min_length=1)
    reps: list[str] = Field(default_factory=list)


class _TeamsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teams: list[_Team] = Field(default_factory=list)


class Escalation:
    """``manager_of(rep_id)``: the manager an overdue task of that rep is escalated to."""

    def __init__(self, managers: dict[str, str], default_manager: str) -> None:
        self.managers = managers
        self.default_manager = default_manager

    def manager_of(self, rep_id: str) -> str:
        return self.managers.get(rep_id, self.default_manager)


def parse_teams(text: str, default_manager: str) -> Escalation:
    try:
        raw = _TeamsFile.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise InvalidTeams(f"invalid teams configuration: {exc}") from exc
    managers: dict[str, str] = {}
    for team in raw.teams:
        for rep in team.reps:
            if managers.setdefault(rep, team.manager) != team.manager:
                raise InvalidTeams(f"rep {rep} is in the teams of both {managers[rep]} and {team.manager}")
    return Escalation(managers, default_manager)


def load_escalation(path: Path | None, default_manager: str) -> Escalation:
    if path is None:
        return Escalation({}, default_manager)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidTeams(f"cannot read the teams configuration {path}: {exc}") from exc
    return parse_teams(text, default_manager)
