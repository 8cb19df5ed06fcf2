"""Automatic assignment: rules matching a lead's profile to a group of reps, and how one is chosen.

The rules come from a file (``LEADFLOW_ASSIGNMENT_RULES``); the first matching rule with an
eligible rep wins. The round-robin position of each rule is recorded in a Rotation aggregate, so
the choice follows from recorded state alone.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Grade

ROTATION_NAMESPACE = UUID("a4f0d7b2-6c1e-4d35-8e9a-0b2c4d6e8f17")
CRITERIA = ("region", "industry", "source", "grade")


class Profile(Protocol):
    region: str | None
    industry: str | None
    source: str
    grade: str


class Match(BaseModel):
    """Each listed criterion must match (any of its values, case-insensitive); an empty match matches all."""

    model_config = ConfigDict(extra="forbid")

    region: list[str] = Field(default_factory=list)
    industry: list[str] = Field(default_factory=list)
    source: list[str] = Field(default_factory=list)
    grade: list[Grade] = Field(default_factory=list)

    @field_validator("*", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def matches(self, lead: Profile) -> bool:
        for criterion in CRITERIA:
            wanted = getattr(self, criterion)
            value = getattr(lead, criterion)
            if wanted and (value is None or value.casefold() not in {w.casefold() for w in wanted}):
                return False
        return True


class RoutingRule(BaseModel):
    """Leads matching ``match`` go to one of ``reps``, chosen by ``strategy``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    match: Match = Field(default_factory=Match)
    reps: list[str] = Field(min_length=1)
    strategy: Literal["round_robin", "least_loaded"] = "round_robin"

    @field_validator("reps")
    @classmethod
    def _distinct(cls, reps: list[str]) -> list[str]:
        if len(set(reps)) != len(reps):
            raise ValueError("a rep is listed twice")
        return reps


class AssignmentRules(BaseModel):
    """The whole rules file."""

    model_config = ConfigDict(extra="forbid")

    rules: list[RoutingRule] = Field(default_factory=list)
    inactive_reps: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> AssignmentRules:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique (each keeps its own round-robin position)")
        return self

    def matching(self, lead: Profile) -> list[RoutingRule]:
        return [rule for rule in self.rules if rule.match.matches(lead)]


def pick(rule: RoutingRule, open_leads: dict[str, int | None], cursor: int) -> tuple[str, int] | None:
    """Choose a rep of ``rule``: ``open_leads`` maps each rep to their open leads, or None when the
    rep may not take the lead (inactive, offboarded, at the limit). Returns the rep and the next
    round-robin cursor, or None when nobody is eligible."""
    if rule.strategy == "least_loaded":
        eligible = [(load, index, rep) for index, rep in enumerate(rule.reps) if (load := open_leads.get(rep)) is not None]
        if not eligible:
            return None
        _, _, rep = min(eligible)
        return rep, cursor
    size = len(rule.reps)
    for step in range(size):
        index = (cursor + step) % size
        if open_leads.get(rule.reps[index]) is not None:
            return rule.reps[index], (index + 1) % size
    return None


class Rotation(Aggregate):
    """The round-robin position of one rule."""

    @staticmethod
    def create_id(rule_name: str, **_: Any) -> UUID:
        return rotation_id(rule_name)

    @event("Started")
    def __init__(self, *, rule_name: str) -> None:
        self.rule_name = rule_name
        self.cursor = 0

    def move_to(self, cursor: int) -> None:
        if cursor != self.cursor:
            self._moved(cursor=cursor)

    @event("Moved")
    def _moved(self, *, cursor: int) -> None:
        self.cursor = cursor


def rotation_id(rule_name: str) -> UUID:
    return uuid5(ROTATION_NAMESPACE, rule_name)
