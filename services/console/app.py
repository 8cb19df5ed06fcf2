"""The directory's event-sourced application: commands on ``User`` aggregates, and the list of people.

The list is folded from the application's own notification log, read on from where it stopped at each
query (one cheap query when nothing changed), so people added by the CLI in another process show at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from services.console.domain import (
    InvalidPerson,
    NotAManager,
    Profile,
    Role,
    UnknownUser,
    User,
    UsernameTaken,
    check_password,
    normalise_username,
    user_id,
)
from services.console.passwords import hash_password, verify_password
from shared.eventstore import EventSourcedApplication
from shared.retry import COMMAND_RACES

T = TypeVar("T")


@dataclass(frozen=True)
class Person:
    """A person as the pages show them (no password hash)."""

    username: str
    display_name: str
    role: Role
    team: str | None
    manager: str | None
    email: str | None
    phone: str | None
    active: bool
    joined_at: datetime

    @classmethod
    def of(cls, user: User) -> Person:
        return cls(
            username=user.username,
            display_name=user.display_name,
            role=user.role,
            team=user.team,
            manager=user.manager,
            email=user.email,
            phone=user.phone,
            active=user.active,
            joined_at=user.joined_at,
        )


class SignIn(Enum):
    OK = "ok"
    WRONG = "wrong"  # unknown username or wrong password: the same answer, so usernames cannot be probed
    INACTIVE = "inactive"


class DirectoryApplication(EventSourcedApplication):
    name = "console"

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env=env)
        self._people: dict[str, Person] = {}
        self._usernames: dict[UUID, str] = {}
        self._position = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def on_recorded(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _notify(self, recordings: list) -> None:
        for listener in self._listeners:
            listener()

    # -- commands -----------------------------------------------------------------------------------

    def add(self, profile: Profile, password: str, at: datetime, by: str | None) -> Person:
        self._check_manager(profile.manager)
        user = User.join(profile, hash_password(check_password(password)), at, by)
        try:
            self.save(user)
        except IntegrityError:
            raise UsernameTaken(profile.username) from None
        return Person.of(user)

    def deactivate(self, username: str, at: datetime, by: str | None) -> Person:
        return self._command(username, lambda user: user.deactivate(at, by))

    def reactivate(self, username: str, at: datetime, by: str | None) -> Person:
        return self._command(username, lambda user: user.reactivate(at, by))

    def move(self, username: str, team: str | None, manager: str | None, at: datetime, by: str | None) -> Person:
        checked = Profile.of(username=username, role="rep", team=team, manager=manager)
        self._check_manager(checked.manager)
        return self._command(username, lambda user: user.move(checked.team, checked.manager, at, by))

    def set_password(self, username: str, password: str, at: datetime, by: str | None) -> Person:
        password_hash = hash_password(check_password(password))
        return self._command(username, lambda user: user.change_password(password_hash, at, by))

    def _check_manager(self, manager: str | None) -> None:
        if manager is None:
            return
        boss = self.person(manager)
        if boss is None or not boss.active or boss.role not in ("manager", "admin"):
            raise NotAManager(manager)

    def _command(self, username: str, change: Callable[[User], object]) -> Person:
        name = normalise_username(username)

        def attempt() -> Person:
            user = self.get_or_none(user_id(name))
            if user is None:
                raise UnknownUser(name)
            change(user)
            if user.pending_events:
                self.save(user)
            return Person.of(user)

        return COMMAND_RACES.call(attempt)

    # -- queries ------------------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> tuple[SignIn, Person | None]:
        """Checks the password against the event store (always current, whatever the list has read)."""
        try:
            name = normalise_username(username)
        except InvalidPerson:
            verify_password(None, password)
            return SignIn.WRONG, None
        user: User | None = self.get_or_none(user_id(name))
        if not verify_password(user.password_hash if user else None, password) or user is None:
            return SignIn.WRONG, None
        if not user.active:
            return SignIn.INACTIVE, None
        return SignIn.OK, Person.of(user)

    def person(self, username: str) -> Person | None:
        try:
            name = normalise_username(username)
        except InvalidPerson:
            return None
        self.refresh()
        return self._people.get(name)

    def username_of(self, aggregate_id: UUID) -> str | None:
        user = self.get_or_none(aggregate_id)
        return user.username if user is not None else None

    def people(self) -> list[Person]:
        self.refresh()
        return sorted(self._people.values(), key=lambda p: (p.team or "", p.role != "manager", p.username))

    def team_of(self, manager: str) -> list[Person]:
        """The people a manager leads: those who report to them, and the reps of every team they manage someone of
        (or are in themself). Another manager of the same team is a peer, not a report."""
        people = self.people()
        direct = [p for p in people if p.manager == manager]
        teams = {p.team for p in direct if p.team}
        me = self._people.get(manager)
        if me is not None and me.team:
            teams.add(me.team)
        return [
            p
            for p in people
            if p.username != manager and (p.manager == manager or (p.role == "rep" and p.team and p.team in teams))
        ]

    def refresh(self) -> None:
        """Fold what was recorded since the last look (by this process or another) into the list."""
        with self._lock:
            while True:
                notifications = self.recorder.select_notifications(self._position + 1, 500)
                if not notifications:
                    return
                for notification in notifications:
                    self._fold(self.mapper.to_domain_event(notification))
                self._position = notifications[-1].id

    def _fold(self, event: object) -> None:
        match event:
            case User.Joined():
                person = Person(
                    username=event.username,  # type: ignore[attr-defined]
                    display_name=event.display_name,  # type: ignore[attr-defined]
                    role=event.role,  # type: ignore[attr-defined]
                    team=event.team,  # type: ignore[attr-defined]
                    manager=event.manager,  # type: ignore[attr-defined]
                    email=event.email,  # type: ignore[attr-defined]
                    phone=event.phone,  # type: ignore[attr-defined]
                    active=True,
                    joined_at=event.at,  # type: ignore[attr-defined]
                )
                self._people[person.username] = person
                self._usernames[event.originator_id] = person.username
            case User.Deactivated() | User.Reactivated() | User.TeamChanged():
                known = self._people.get(self._usernames.get(event.originator_id, ""))
                if known is None:
                    return
                if isinstance(event, User.TeamChanged):
                    known = replace(known, team=event.team, manager=event.manager)  # type: ignore[attr-defined]
                else:
                    known = replace(known, active=isinstance(event, User.Reactivated))
                self._people[known.username] = known
