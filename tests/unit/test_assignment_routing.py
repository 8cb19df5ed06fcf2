"""Automatic assignment rules: matching, round robin, least loaded, and the rules file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from services.assignment.config import DEFAULT_RULES_FILE, AssignmentSettings, load_assignment_rules
from services.assignment.domain.routing import AssignmentRules, RoutingRule, pick


def lead(**profile):
    return SimpleNamespace(**{"region": None, "industry": None, "source": "web_form", "grade": "B", **profile})


RULES = AssignmentRules.model_validate(
    {
        "rules": [
            {"name": "east", "match": {"region": ["上海", "Jiangsu"], "industry": "manufacturing"}, "reps": ["a", "b", "c"]},
            {"name": "grade-a", "match": {"grade": "A"}, "reps": ["x", "y"], "strategy": "least_loaded"},
            {"name": "catch-all", "reps": ["z"]},
        ],
        "inactive_reps": ["c"],
    }
)


def test_every_listed_criterion_must_match_case_insensitively():
    names = lambda profile: [r.name for r in RULES.matching(lead(**profile))]  # noqa: E731
    assert names({"region": "jiangsu", "industry": "Manufacturing"}) == ["east", "catch-all"]
    assert names({"region": "上海", "industry": "retail"}) == ["catch-all"]
    assert names({"region": None, "industry": "manufacturing", "grade": "A"}) == ["grade-a", "catch-all"]


def test_round_robin_rotates_skips_the_ineligible_and_wraps():
    rule = RULES.rules[0]
    assert pick(rule, {"a": 0, "b": 0, "c": 0}, 0) == ("a", 1)
    assert pick(rule, {"a": 0, "b": 0, "c": 0}, 1) == ("b", 2)
    assert pick(rule, {"a": 0, "b": None, "c": 0}, 1) == ("c", 0)
    assert pick(rule, {"a": 5, "b": None, "c": None}, 1) == ("a", 1)
    assert pick(rule, {"a": None, "b": None, "c": None}, 0) is None


def test_least_loaded_picks_the_fewest_open_leads_ties_in_listed_order():
    rule = RoutingRule(name="r", reps=["x", "y", "w"], strategy="least_loaded")
    assert pick(rule, {"x": 4, "y": 2, "w": 2}, 7) == ("y", 7)
    assert pick(rule, {"x": 0, "y": 0, "w": 0}, 0) == ("x", 0)
    assert pick(rule, {"x": None, "y": 9, "w": None}, 0) == ("y", 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"rules": [{"name": "a", "reps": ["r"]}, {"name": "a", "reps": ["s"]}]},
        {"rules": [{"name": "a", "reps": []}]},
        {"rules": [{"name": "a", "reps": ["r", "r"]}]},
        {"rules": [{"name": "a", "reps": ["r"], "strategy": "random"}]},
        {"rules": [{"name": "a", "reps": ["r"], "match": {"colour": "red"}}]},
        {"rules": [{"name": "a", "reps": ["r"], "match": {"grade": "D"}}]},
        {"rulez": []},
    ],
)
def test_a_bad_rules_file_is_refused(bad):
    with pytest.raises(ValidationError):
        AssignmentRules.model_validate(bad)


def test_the_shipped_rules_file_assigns_nothing(tmp_path: Path):
    assert load_assignment_rules(DEFAULT_RULES_FILE) == AssignmentRules()
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: east\n    match: {region: 上海}\n    reps: [a]\n", encoding="utf-8")
    assert load_assignment_rules(path).rules[0].match.region == ["上海"]


def test_settings_take_the_contract_defaults_and_durations(monkeypatch):
    defaults = AssignmentSettings().ownership_rules()
    assert (defaults.protection_period.days, defaults.first_contact_sla.total_seconds(), defaults.max_leads_per_rep) == (
        30,
        48 * 3600,
        200,
    )
    monkeypatch.setenv("LEADFLOW_FIRST_CONTACT_SLA", "6s")
    monkeypatch.setenv("LEADFLOW_MAX_LEADS_PER_REP", "5")
    rules = AssignmentSettings().ownership_rules()
    assert (rules.first_contact_sla.total_seconds(), rules.max_leads_per_rep) == (6, 5)
    monkeypatch.setenv("LEADFLOW_RECLAIM_COOLDOWN", "0s")
    with pytest.raises(ValidationError):
        AssignmentSettings()
