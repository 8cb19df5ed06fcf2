"""``python -m shared.deadletters list|show|retry|discard --service <name>``: a service's parked events.

Reads ``LEADFLOW_DATABASE_URL`` like the services. ``retry`` does not apply anything itself: it marks the
entries ``retry-requested`` and the service's own worker (the one that parked each entry, with the
handler the service runs now) re-drives them within a few seconds, exactly once, marking each
resolved in the transaction that applies it; the command shows the progress until each is resolved or
parked again. So a re-drive needs the fixed service running, and nothing but the service ever writes
its tables. See ``docs/operations.md``, "Dead letters".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import psycopg

from shared.config import ServiceSettings
from shared.deadletters import DISCARDED, PARKED, RESOLVED, RETRY_REQUESTED, STATUSES, DeadLetterTable, Entry

SERVICES = ("intake", "assignment", "followup", "analytics")


class DeadLetterSettings(ServiceSettings):
    # analytics keeps its tables in a schema of its choosing (``LEADFLOW_ANALYTICS_SCHEMA``); the others in
    # the schema named after the service.
    analytics_schema: str = "analytics"

    def schema_of(self, service: str) -> str:
        return self.analytics_schema if service == "analytics" else service


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shared.deadletters", description="A service's parked (dead-lettered) events."
    )
    parser.add_argument("--service", required=True, choices=SERVICES, help="whose dead letters")
    parser.add_argument("--schema", help="the service's schema, if not the usual one")
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="parked entries: id, when, worker, reason, error, lead")
    listing.add_argument("--status", default=f"{PARKED},{RETRY_REQUESTED}", help=f"comma-separated, of {', '.join(STATUSES)}")
    listing.add_argument("--limit", type=int, default=100)

    show = commands.add_parser("show", help="one entry in full")
    show.add_argument("id", type=int)

    retry = commands.add_parser("retry", help="re-drive entries through the service's handler (after a fix)")
    retry.add_argument("ids", type=int, nargs="*")
    retry.add_argument("--all", action="store_true", help="every parked entry")
    retry.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the service (default 120)")

    discard = commands.add_parser("discard", help="give entries up (they stay listed as discarded)")
    discard.add_argument("ids", type=int, nargs="*")
    discard.add_argument("--all", action="store_true", help="every parked entry")
    args = parser.parse_args(argv)
    if args.command in ("retry", "discard") and bool(args.ids) == args.all:
        parser.error(f"{args.command}: name entry ids or --all (not both)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = DeadLetterSettings()
    table = DeadLetterTable(args.schema or settings.schema_of(args.service))
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        table.create(conn)  # a service that never parked may not have made it yet: then it is empty
        if args.command == "list":
            return list_entries(conn, table, [s for s in args.status.split(",") if s], args.limit)
        if args.command == "show":
            return show_entry(conn, table, args.id)
        if args.command == "discard":
            return discard(conn, table, None if args.all else args.ids)
        return retry(conn, table, None if args.all else args.ids, args.wait, args.service)


def list_entries(conn: psycopg.Connection[Any], table: DeadLetterTable, statuses: list[str], limit: int) -> int:
    rows = table.listing(conn, statuses, limit)
    if not rows:
        print(f"no entries with status {', '.join(statuses)}")
        return 0
    print(f"{'id':>6}  {'parked at (UTC)':19}  {'worker':16}  {'reason':16}  {'status':15}  {'lead':36}  type / error")
    for row in rows:
        when = row["parked_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{row['id']:>6}  {when:19}  {row['worker'][:16]:16}  {row['reason']:16}  {row['status']:15}  "
            f"{row['lead_id'] or '-':36}  {row['event_type'] or '-'}: {row['error']}"
        )
    return 0


def show_entry(conn: psycopg.Connection[Any], table: DeadLetterTable, entry_id: int) -> int:
    row = table.row(conn, entry_id)
    if row is None:
        print(f"no entry {entry_id}", file=sys.stderr)
        return 1
    entry = Entry.of(row)
    for name in ("id", "status", "status_at", "parked_at", "service", "worker", "reason", "attempts", "redrives"):
        print(f"{name:18} {row[name]}")
    print(f"{'from':18} {row['topic']} partition {row['partition']} offset {row['offset']}")
    for name in ("lead_id", "event_id", "event_type", "error", "last_redrive_error"):
        print(f"{name:18} {row[name] if row[name] is not None else '-'}")
    print(f"{'key':18} {entry.key!r}")
    print("headers")
    for key, value in entry.headers:
        print(f"  {key}: {value.decode('utf-8', 'replace')}")
    print("value")
    try:
        print(json.dumps(json.loads(entry.value), indent=2, ensure_ascii=False))
    except ValueError:
        print(f"  (not JSON, {len(entry.value)} bytes) {entry.value[:2000]!r}")
    return 0


def discard(conn: psycopg.Connection[Any], table: DeadLetterTable, ids: list[int] | None) -> int:
    moved = table.set_status(conn, ids, DISCARDED, from_=(PARKED, RETRY_REQUESTED))
    print(
        f"discarded {len(moved)} entr{'y' if len(moved) == 1 else 'ies'}" + (f": {', '.join(map(str, moved))}" if moved else "")
    )
    if ids is not None and len(moved) < len(ids):
        missing = sorted(set(ids) - set(moved))
        print(f"not discarded (resolved, discarded already, or unknown): {', '.join(map(str, missing))}")
    return 0


def retry(conn: psycopg.Connection[Any], table: DeadLetterTable, ids: list[int] | None, wait: float, service: str) -> int:
    requested = table.set_status(conn, ids, RETRY_REQUESTED, from_=(PARKED, RETRY_REQUESTED))
    unknown = []
    if ids is not None:
        known = table.statuses(conn, ids)
        for entry_id in ids:
            if entry_id not in known:
                unknown.append(entry_id)
                print(f"entry {entry_id}: no such entry")
            elif entry_id not in requested:
                print(f"entry {entry_id}: {known[entry_id][0]}, nothing to re-drive")  # e.g. resolved by an earlier retry
    if not requested:
        print("nothing to re-drive")
        return 1 if unknown else 0
    print(f"re-driving {_entries(len(requested))} through {service}'s workers")
    deadline = time.monotonic() + wait
    while True:
        statuses = table.statuses(conn, requested)
        resolved = [i for i in requested if statuses[i][0] == RESOLVED]
        failed = [i for i in requested if statuses[i][0] == PARKED]
        waiting = [i for i in requested if statuses[i][0] == RETRY_REQUESTED]
        print(
            f"\r  resolved {len(resolved)}/{len(requested)}, failed again {len(failed)}, waiting {len(waiting)}   ",
            end="",
            flush=True,
        )
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    print()
    for entry_id in failed:
        print(f"entry {entry_id} failed again: {statuses[entry_id][1]}")
    if waiting:
        print(
            f"{len(waiting)} still waiting after {wait:.0f} s: is {service} running (with the worker that parked them)?"
            " They stay requested: the service re-drives them when it runs."
        )
        return 2
    return 1 if failed or unknown else 0


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"
