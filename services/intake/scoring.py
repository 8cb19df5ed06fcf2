"""Lead scoring and grading: pure rules, loaded from a YAML file (see ``scoring_rules.yaml``).

A lead's score is the sum of the points its profile and its behaviour signals earn, clamped to 0–100.
Within each profile dimension the first matching rule counts (so order rules from specific to general);
each signal counts up to ``max_times`` times. Every score comes with the reasons that make it up.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Grade = Literal["A", "B", "C"]
KEYWORD_DIMENSIONS = ("industry", "title", "region")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeywordRule(_Strict):
    """Matches when any keyword occurs in the attribute (case-insensitive substring)."""

    keywords: list[str] = Field(min_length=1)
    points: int

    def first_match(self, folded_text: str) -> str | None:
        for keyword, folded in self._folded:
            if folded in folded_text:
                return keyword
        return None

    @functools.cached_property
    def _folded(self) -> tuple[tuple[str, str], ...]:
        """(keyword, case-folded keyword) pairs, folded once per rule rather than once per lead."""
        return tuple((keyword, keyword.casefold()) for keyword in self.keywords)


class SizeRule(_Strict):
    """Matches companies of at least this many people."""

    at_least: int = Field(ge=0)
    points: int


class SignalRule(_Strict):
    points: int
    max_times: int = Field(default=1, ge=1)


class GradeThresholds(_Strict):
    A: int = 70
    B: int = 40

    @model_validator(mode="after")
    def _ordered(self) -> GradeThresholds:
        if self.A <= self.B:
            raise ValueError("grade A's threshold must be above grade B's")
        return self


class ProfileRules(_Strict):
    industry: list[KeywordRule] = Field(default_factory=list)
    title: list[KeywordRule] = Field(default_factory=list)
    region: list[KeywordRule] = Field(default_factory=list)
    company_size: list[SizeRule] = Field(default_factory=list)
    contacts: dict[Literal["decision_maker", "user", "influencer", "purchaser"], int] = Field(default_factory=dict)


@dataclass(frozen=True)
class ScoreCard:
    score: int
    grade: Grade
    reasons: list[dict[str, Any]]


class ScoringRules(_Strict):
    """The whole rule set; build it with ``ScoringRules.model_validate(yaml.safe_load(...))``."""

    grades: GradeThresholds = GradeThresholds()
    profile: ProfileRules = ProfileRules()
    signals: dict[str, SignalRule] = Field(default_factory=dict)

    @functools.cached_property
    def _sizes_largest_first(self) -> list[SizeRule]:
        return sorted(self.profile.company_size, key=lambda r: -r.at_least)

    def grade_for(self, score: int) -> Grade:
        if score >= self.grades.A:
            return "A"
        if score >= self.grades.B:
            return "B"
        return "C"

    def evaluate(self, profile: Mapping[str, Any], signals: Mapping[str, int]) -> ScoreCard:
        """Score a profile (industry, title, region, company_size, contacts) plus signal counts."""
        reasons: list[dict[str, Any]] = []
        for dimension in KEYWORD_DIMENSIONS:
            value = profile.get(dimension)
            rules: list[KeywordRule] = getattr(self.profile, dimension)
            if value and (hit := _first_keyword_match(rules, value)):
                rule, keyword = hit
                reasons.append({"rule": dimension, "matched": keyword, "points": rule.points})
        size = company_size_of(profile.get("company_size"))
        if size is not None:
            for size_rule in self._sizes_largest_first:
                if size >= size_rule.at_least:
                    reasons.append({"rule": "company_size", "matched": f">={size_rule.at_least}", "points": size_rule.points})
                    break
        roles = {contact.get("role") for contact in profile.get("contacts") or ()}
        for role, points in self.profile.contacts.items():
            if role in roles:
                reasons.append({"rule": "contacts", "matched": role, "points": points})
        for signal, count in signals.items():
            signal_rule = self.signals.get(signal)
            if signal_rule is not None and count > 0:
                times = min(count, signal_rule.max_times)
                reasons.append({"rule": "signal", "matched": signal, "times": times, "points": signal_rule.points * times})
        score = max(0, min(100, sum(r["points"] for r in reasons)))
        return ScoreCard(score=score, grade=self.grade_for(score), reasons=reasons)


def _first_keyword_match(rules: Sequence[KeywordRule], value: str) -> tuple[KeywordRule, str] | None:
    text = value.casefold()
    for rule in rules:
        if (keyword := rule.first_match(text)) is not None:
            return rule, keyword
    return None


_NUMBER = re.compile(r"\d[\d,]*")
_BELOW = re.compile(r"以下|以内|不到|少于|under|below|less than|fewer than|<", re.IGNORECASE)


def company_size_of(text: str | None) -> int | None:
    """Head count from what people write: ``200-500人`` → 200, ``1,000+`` → 1000, ``50人以下`` → 49."""
    if not text:
        return None
    match = _NUMBER.search(text)
    if match is None:
        return None
    size = int(match.group().replace(",", ""))
    return max(0, size - 1) if _BELOW.search(text) else size
