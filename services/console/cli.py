"""``python -m services.console users add|deactivate|reactivate|move|passwd|list``: the directory from a shell.

It writes to the directory's event store directly; the console's relay publishes what it recorded
(``RepJoined`` …) as soon as the console runs.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from services.console import SERVICE
from services.console.app import DirectoryApplication
from services.console.config import ConsoleSettings
from services.console.domain import ROLES, DirectoryError, Profile
from shared.clock import system_clock
from shared.eventstore import ensure_schema, eventsourcing_env


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m services.console", description="The LeadFlow console and its directory.")
    commands = top.add_subparsers(dest="what", required=True)
    users = commands.add_parser("users", help="people in the directory").add_subparsers(dest="command", required=True)

    add = users.add_parser("add", help="add a person")
    add.add_argument("--username", required=True, help="also their rep_id everywhere")
    add.add_argument("--password", help="at least 8 characters (asked for when omitted)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--team")
    add.add_argument("--manager", help="the username of their manager (an active manager or admin)")
    add.add_argument("--email")
    add.add_argument("--phone", help="for notifications")
    add.add_argument("--display-name")

    for name, text in (("deactivate", "may no longer sign in nor own leads"), ("reactivate", "active again")):
        command = users.add_parser(name, help=text)
        command.add_argument("username")

    move = users.add_parser("move", help="another team and/or manager")
    move.add_argument("username")
    move.add_argument("--team")
    move.add_argument("--manager")

    passwd = users.add_parser("passwd", help="set a new password")
    passwd.add_argument("username")
    passwd.add_argument("--password")

    listing = users.add_parser("list", help="everyone, by team")
    listing.add_argument("--all", action="store_true", help="include inactive people")
    return top


def run(argv: Sequence[str], directory: DirectoryApplication, out=sys.stdout) -> int:
    args = parser().parse_args(argv)
    now = system_clock()
    by = "cli"
    try:
        if args.command == "add":
            profile = Profile.of(
                username=args.username,
                role=args.role,
                display_name=args.display_name,
                team=args.team,
                manager=args.manager,
                email=args.email,
                phone=args.phone,
            )
            person = directory.add(profile, args.password or getpass.getpass("password: "), now, by)
            print(f"added {person.username} ({person.role}{', team ' + person.team if person.team else ''})", file=out)
        elif args.command == "deactivate":
            print(f"deactivated {directory.deactivate(args.username, now, by).username}", file=out)
        elif args.command == "reactivate":
            print(f"reactivated {directory.reactivate(args.username, now, by).username}", file=out)
        elif args.command == "move":
            person = directory.move(args.username, args.team, args.manager, now, by)
            print(f"moved {person.username}: team {person.team or '-'}, manager {person.manager or '-'}", file=out)
        elif args.command == "passwd":
            directory.set_password(args.username, args.password or getpass.getpass("new password: "), now, by)
            print(f"password set for {args.username}", file=out)
        elif args.command == "list":
            print(f"{'username':<20} {'role':<8} {'team':<16} {'manager':<16} {'active':<6} name", file=out)
            for p in directory.people():
                if p.active or args.all:
                    active = "yes" if p.active else "no"
                    row = f"{p.username:<20} {p.role:<8} {p.team or '-':<16} {p.manager or '-':<16} {active:<6}"
                    print(f"{row} {p.display_name}", file=out)
    except DirectoryError as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    settings = ConsoleSettings()
    ensure_schema(settings, SERVICE)
    directory = DirectoryApplication(eventsourcing_env(settings, SERVICE))
    try:
        return run(argv, directory)
    finally:
        directory.close()
