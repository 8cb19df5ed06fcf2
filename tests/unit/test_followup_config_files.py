"""The SOP cadence file and the teams file: shipped defaults load, mistakes are refused clearly."""

from datetime import timedelta

import pytest

from services.followup.config import DEFAULT_SOP, FollowupSettings
from services.followup.escalation import InvalidTeams, load_escalation, parse_teams
from services.followup.sop import InvalidSop, load_sop, parse_sop


def test_the_shipped_sop_has_the_seeded_cadence():
    sop = load_sop(DEFAULT_SOP)
    assert sop.grades["A"].first_contact == timedelta(hours=24)
    assert sop.grades["A"].every <= timedelta(days=3.5)
    assert (sop.grades["B"].first_contact, sop.grades["B"].every) == (timedelta(hours=48), timedelta(days=7))
    assert sop.grades["C"].every == timedelta(days=30)
    assert sop.stages["quoted"].after == timedelta(days=3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grades: {A: {first_contact: 1h}}", "every"),
        ("grades: {A: {first_contact: soon, every: 1d}}", "duration"),
        ("default_grade: C\ngrades: {A: {first_contact: 1h, every: 1d}}", "default_grade"),
        ("grades: {B: {first_contact: 1h, every: 1d}}\nstages: {won: {kind: x, title: t, after: 1d}}", "won"),
        ("grades: {B: {first_contact: 0s, every: 1d}}", "positive"),
        ("grades: [", "invalid SOP"),
    ],
)
def test_a_broken_sop_is_refused(text, message):
    with pytest.raises(InvalidSop, match=message):
        parse_sop(text)


def test_a_missing_sop_file_is_refused(tmp_path):
    with pytest.raises(InvalidSop, match="cannot read"):
        load_sop(tmp_path / "nope.yaml")


def test_overdue_tasks_escalate_to_the_reps_manager_or_the_default():
    teams = parse_teams("teams:\n  - manager: m-east\n    reps: [rep-1, rep-2]\n", "sales-manager")
    assert teams.manager_of("rep-1") == "m-east"
    assert teams.manager_of("rep-9") == "sales-manager"
    assert load_escalation(None, "boss").manager_of("rep-1") == "boss"


def test_a_rep_in_two_teams_is_refused():
    with pytest.raises(InvalidTeams, match="both"):
        parse_teams("teams: [{manager: a, reps: [r]}, {manager: b, reps: [r]}]", "x")


def test_settings_read_durations_from_the_environment(monkeypatch):
    monkeypatch.setenv("LEADFLOW_RECYCLE_REMINDER_LEAD", "3s")
    monkeypatch.setenv("LEADFLOW_SCHEDULER_TICK", "500ms")
    settings = FollowupSettings()
    assert settings.recycle_reminder_lead == timedelta(seconds=3)
    assert settings.scheduler_tick == timedelta(milliseconds=500)
    assert (settings.followup_port, settings.follow_up_sla) == (8003, timedelta(days=7))
