"""The people directory: rules of the User aggregate and the directory application, in memory (no I/O)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from services.console.app import DirectoryApplication, SignIn
from services.console.cli import run
from services.console.domain import (
    InvalidPerson,
    NotAManager,
    Profile,
    SelfDeactivation,
    UnknownUser,
    User,
    UsernameTaken,
)
from services.console.publishers import integration_mapping
from shared.events import RepDeactivated, RepJoined, RepReactivated, TeamChanged

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


def directory() -> DirectoryApplication:
    return DirectoryApplication(env={})  # eventsourcing's in-memory store


def person(username: str, role: str = "rep", **fields) -> Profile:
    return Profile.of(username=username, role=role, **fields)


def test_a_profile_is_normalised_and_checked():
    profile = Profile.of(username=" Rep-1 ", role="rep", display_name="  王  芳 ", email="Wang@Example.COM", team=" east ")
    assert (profile.username, profile.display_name, profile.email, profile.team) == ("rep-1", "王 芳", "wang@example.com", "east")
    assert Profile.of(username="rep-2", role="rep").display_name == "rep-2"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": "has space", "role": "rep"}, "username"),
        ({"username": "", "role": "rep"}, "username"),
        ({"username": "rep-1", "role": "boss"}, "role"),
        ({"username": "rep-1", "role": "rep", "email": "not-mail"}, "email"),
        ({"username": "rep-1", "role": "rep", "manager": "rep-1"}, "manager"),
        ({"username": "rep-1", "role": "rep", "display_name": "a\u202eb"}, "display_name"),
        ({"username": "rep-1", "role": "rep", "team": "x\x00"}, "team"),
    ],
)
def test_a_profile_refuses_what_it_cannot_record(fields, field):
    with pytest.raises(InvalidPerson) as refused:
        Profile.of(**fields)
    assert refused.value.field == field


def test_joining_records_who_and_hashes_the_password():
    app = directory()
    app.add(person("mgr-1", "manager", team="east"), PASSWORD, NOW, "admin")
    joined = app.add(person("rep-1", team="east", manager="mgr-1", email="r1@example.com"), PASSWORD, NOW, "admin")
    assert joined.active and joined.manager == "mgr-1"
    user = app.get_or_none(User.create_id("rep-1"))
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert [p.username for p in app.people()] == ["mgr-1", "rep-1"]


def test_a_username_is_taken_once():
    app = directory()
    app.add(person("rep-1"), PASSWORD, NOW, None)
    with pytest.raises(UsernameTaken):
        app.add(person("REP-1", "admin"), PASSWORD, NOW, None)


def test_a_manager_must_be_an_active_manager_or_admin():
    app = directory()
    app.add(person("rep-1"), PASSWORD, NOW, None)
    for boss in ("nobody", "rep-1"):
        with pytest.raises(NotAManager):
            app.add(person("rep-2", manager=boss), PASSWORD, NOW, None)
    app.add(person("mgr-1", "manager"), PASSWORD, NOW, None)
    app.deactivate("mgr-1", NOW, "admin")
    with pytest.raises(NotAManager):
        app.add(person("rep-2", manager="mgr-1"), PASSWORD, NOW, None)


def test_short_passwords_are_refused():
    with pytest.raises(InvalidPerson) as refused:
        directory().add(person("rep-1"), "short", NOW, None)
    assert refused.value.field == "password"


def test_sign_in_tells_a_wrong_password_from_an_inactive_person_but_not_from_an_unknown_one():
    app = directory()
    app.add(person("rep-1"), PASSWORD, NOW, None)
    assert app.authenticate("rep-1", PASSWORD)[0] is SignIn.OK
    assert app.authenticate(" REP-1 ", PASSWORD)[0] is SignIn.OK
    assert app.authenticate("rep-1", "wrong password") == (SignIn.WRONG, None)
    assert app.authenticate("nobody", PASSWORD) == (SignIn.WRONG, None)
    assert app.authenticate("not a name!", PASSWORD) == (SignIn.WRONG, None)
    app.deactivate("rep-1", NOW, "admin")
    assert app.authenticate("rep-1", PASSWORD) == (SignIn.INACTIVE, None)
    app.reactivate("rep-1", NOW, "admin")
    assert app.authenticate("rep-1", PASSWORD)[0] is SignIn.OK


def test_deactivating_is_idempotent_and_never_of_oneself():
    app = directory()
    app.add(person("adm", "admin"), PASSWORD, NOW, None)
    app.add(person("rep-1"), PASSWORD, NOW, None)
    app.deactivate("rep-1", NOW, "adm")
    app.deactivate("rep-1", NOW, "adm")
    user = app.get_or_none(User.create_id("rep-1"))
    assert user.version == 2  # joined, deactivated once
    with pytest.raises(SelfDeactivation):
        app.deactivate("adm", NOW, "adm")
    with pytest.raises(UnknownUser):
        app.deactivate("ghost", NOW, "adm")


def test_moving_between_teams_records_only_a_change():
    app = directory()
    app.add(person("mgr-1", "manager", team="east"), PASSWORD, NOW, None)
    app.add(person("mgr-2", "manager", team="west"), PASSWORD, NOW, None)
    app.add(person("rep-1", team="east", manager="mgr-1"), PASSWORD, NOW, None)
    moved = app.move("rep-1", "west", "mgr-2", NOW, "adm")
    assert (moved.team, moved.manager) == ("west", "mgr-2")
    app.move("rep-1", "west", "mgr-2", NOW, "adm")
    assert app.get_or_none(User.create_id("rep-1")).version == 2
    assert [p.username for p in app.team_of("mgr-2")] == ["rep-1"]
    assert app.team_of("mgr-1") == []


def test_a_manager_sees_their_reports_and_their_team():
    app = directory()
    app.add(person("mgr-1", "manager", team="east"), PASSWORD, NOW, None)
    app.add(person("rep-1", team="east"), PASSWORD, NOW, None)  # in the team, no manager set
    app.add(person("rep-2", manager="mgr-1"), PASSWORD, NOW, None)  # reports to mgr-1, no team
    app.add(person("rep-3", team="west"), PASSWORD, NOW, None)
    app.add(person("mgr-2", "manager", team="east"), PASSWORD, NOW, None)  # a peer, not a report
    assert {p.username for p in app.team_of("mgr-1")} == {"rep-1", "rep-2"}


def test_the_published_events_are_the_directorys_and_never_carry_the_password():
    app = directory()
    app.add(person("mgr-1", "manager"), PASSWORD, NOW, "adm")
    rep = person("rep-1", display_name="王芳", manager="mgr-1", email="r1@example.com", phone="+8613800138000")
    app.add(rep, PASSWORD, NOW, "adm")
    app.deactivate("rep-1", NOW, "adm")
    app.reactivate("rep-1", NOW, "adm")
    app.move("rep-1", "east", None, NOW, "adm")
    app.set_password("rep-1", "another good password", NOW, "adm")
    mapping = integration_mapping(app.username_of)
    envelopes = [
        envelope
        for notification in app.recorder.select_notifications(1, 100)
        for envelope in mapping(app.mapper.to_domain_event(notification), notification)
    ]
    payloads = [envelope.payload() for envelope in envelopes]
    assert [type(p) for p in payloads] == [RepJoined, RepJoined, RepDeactivated, RepReactivated, TeamChanged]
    joined = payloads[1]
    assert (joined.rep_id, joined.display_name, joined.manager, joined.phone, joined.joined_by) == (
        "rep-1",
        "王芳",
        "mgr-1",
        "+8613800138000",
        "adm",
    )
    assert all(e.subject == "rep-1" for e in envelopes[1:]) and envelopes[1].source == "/leadflow/console"
    assert all("argon2" not in e.model_dump_json() for e in envelopes)
    again = [e.id for n in app.recorder.select_notifications(1, 100) for e in mapping(app.mapper.to_domain_event(n), n)]
    assert again == [e.id for e in envelopes]  # a re-publication carries the same ids


def test_the_cli_adds_lists_and_deactivates():
    app = directory()
    out = io.StringIO()
    add = ["users", "add", "--password", PASSWORD, "--username"]
    assert run([*add, "mgr-1", "--role", "manager", "--team", "east"], app, out) == 0
    assert run([*add, "rep-1", "--role", "rep", "--manager", "mgr-1"], app, out) == 0
    assert run([*add, "rep-1", "--role", "rep"], app, out) == 1
    assert run(["users", "deactivate", "rep-1"], app, out) == 0
    listing = io.StringIO()
    run(["users", "list"], app, listing)
    assert "mgr-1" in listing.getvalue() and "rep-1" not in listing.getvalue()
    listing = io.StringIO()
    run(["users", "list", "--all"], app, listing)
    assert "rep-1" in listing.getvalue()
