"""The people directory: one ``User`` aggregate per person, keyed by their username (their ``rep_id`` everywhere).

No I/O: the password arrives already hashed, the time and the actor come in with each command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from shared.text import text_error

Role = Literal["rep", "manager", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
USER_NAMESPACE = UUID("8e0f3c55-61d4-4b8e-a7a2-0d6c9a4f1b27")
# Usernames are rep ids in every service's events and URLs: short, no spaces, nothing to escape in a path.
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


class DirectoryError(Exception):
    """A directory command the rules refuse; nothing is recorded."""


class InvalidPerson(DirectoryError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UsernameTaken(DirectoryError):
    def __init__(self, username: str) -> None:
        super().__init__(f"the username {username!r} is taken")
        self.username = username


class UnknownUser(DirectoryError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user {username!r}")
        self.username = username


class NotAManager(DirectoryError):
    """A person's manager must be an active manager or admin of the directory."""

    def __init__(self, username: str) -> None:
        super().__init__(f"{username!r} is not an active manager or admin")
        self.username = username


class SelfDeactivation(DirectoryError):
    def __init__(self) -> None:
        super().__init__("you cannot deactivate your own account")


def user_id(username: str) -> UUID:
    return uuid5(USER_NAMESPACE, username)


def normalise_username(raw: str) -> str:
    username = raw.strip().lower()
    if not USERNAME.match(username):
        raise InvalidPerson("username", "1–64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
    return username


def _line(field: str, value: str | None, *, max_length: int = 200) -> str | None:
    """A single line of clean text, trimmed; blank is None."""
    if value is None:
        return None
    text = " ".join(value.split())
    if not text:
        return None
    if (error := text_error(text)) is not None:
        raise InvalidPerson(field, error)
    if len(text) > max_length:
        raise InvalidPerson(field, f"at most {max_length} characters")
    return text


@dataclass(frozen=True)
class Profile:
    """Who a person is, checked: what a join records."""

    username: str
    display_name: str
    role: Role
    team: str | None = None
    manager: str | None = None
    email: str | None = None
    phone: str | None = None

    @classmethod
    def of(
        cls,
        *,
        username: str,
        role: str,
        display_name: str | None = None,
        team: str | None = None,
        manager: str | None = None,
        email: str | None = None,
        phone: str | None = None,
    ) -> Profile:
        name = normalise_username(username)
        if role not in ROLES:
            raise InvalidPerson("role", f"one of {', '.join(ROLES)}")
        mail = _line("email", email)
        if mail is not None and not EMAIL.match(mail):
            raise InvalidPerson("email", "not an e-mail address")
        boss = normalise_username(manager) if manager and manager.strip() else None
        if boss == name:
            raise InvalidPerson("manager", "a person cannot be their own manager")
        return cls(
            username=name,
            display_name=_line("display_name", display_name, max_length=100) or name,
            role=role,  # type: ignore[arg-type]
            team=_line("team", team, max_length=100),
            manager=boss,
            email=mail.lower() if mail else None,
            phone=_line("phone", phone, max_length=40),
        )


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidPerson("password", f"at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise InvalidPerson("password", "at most 1024 characters")
    if (error := text_error(password)) is not None:
        raise InvalidPerson("password", error)
    return password


class User(Aggregate):
    """One person: profile, role, team and manager, whether they may work, and their password hash."""

    @staticmethod
    def create_id(username: str, **_: Any) -> UUID:
        return user_id(username)

    @event("Joined")
    def __init__(
        self,
        *,
        username: str,
        display_name: str,
        role: Role,
        team: str | None,
        manager: str | None,
        email: str | None,
        phone: str | None,
        password_hash: str,
        at: datetime,
        by: str | None,
    ) -> None:
        self.username = username
        self.display_name = display_name
        self.role = role
        self.team = team
        self.manager = manager
        self.email = email
        self.phone = phone
        self.password_hash = password_hash
        self.active = True
        self.joined_at = at

    @classmethod
    def join(cls, profile: Profile, password_hash: str, at: datetime, by: str | None) -> User:
        return cls(
            username=profile.username,
            display_name=profile.display_name,
            role=profile.role,
            team=profile.team,
            manager=profile.manager,
            email=profile.email,
            phone=profile.phone,
            password_hash=password_hash,
            at=at,
            by=by,
        )

    def deactivate(self, at: datetime, by: str | None) -> bool:
        """False (nothing recorded) when already inactive: deactivating twice is harmless."""
        if by == self.username:
            raise SelfDeactivation()
        if not self.active:
            return False
        self._deactivated(at=at, by=by)
        return True

    @event("Deactivated")
    def _deactivated(self, *, at: datetime, by: str | None) -> None:
        self.active = False

    def reactivate(self, at: datetime, by: str | None) -> bool:
        if self.active:
            return False
        self._reactivated(at=at, by=by)
        return True

    @event("Reactivated")
    def _reactivated(self, *, at: datetime, by: str | None) -> None:
        self.active = True

    def move(self, team: str | None, manager: str | None, at: datetime, by: str | None) -> bool:
        """Another team and/or manager; False when both are as they were."""
        if manager == self.username:
            raise InvalidPerson("manager", "a person cannot be their own manager")
        if (team, manager) == (self.team, self.manager):
            return False
        self._team_changed(team=team, manager=manager, at=at, by=by)
        return True

    @event("TeamChanged")
    def _team_changed(self, *, team: str | None, manager: str | None, at: datetime, by: str | None) -> None:
        self.team = team
        self.manager = manager

    def change_password(self, password_hash: str, at: datetime, by: str | None) -> None:
        self._password_changed(password_hash=password_hash, at=at, by=by)

    @event("PasswordChanged")
    def _password_changed(self, *, password_hash: str, at: datetime, by: str | None) -> None:
        self.password_hash = password_hash
