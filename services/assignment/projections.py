"""The read model of ownership (pool, reps' leads, deadlines index), projected from assignment's own
event log: each recorded Ownership event becomes one row change, applied with the log position in
one transaction, so the view is exact after any restart and can be rebuilt from position 0. A stored
event the view cannot take is parked (:mod:`shared.projector`) and the projector goes on; re-driving it
rebuilds its lead's row from the lead's events."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from services.assignment.domain.ownership import Ownership
from shared.deadletters import DeadLetter, Entry, error_text
from shared.deadletters.parking import transient
from shared.eventstore import EventSourcedApplication
from shared.follow import FollowLoop
from shared.positions import LOG, Positions
from shared.projector import StoredEventParking
from shared.supervisor import WorkerHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowChange:
    """Set ``values`` on the lead's row (``insert``: the row is new). A merged insert also names the
    columns later changes set (``then_set``): should the row exist already, those still apply."""

    lead_id: str
    values: dict[str, Any]
    insert: bool = False
    then_set: tuple[str, ...] = ()

    def then(self, later: RowChange) -> RowChange:
        """This change followed by ``later`` (same lead) as one change with the same effect."""
        values = {**self.values, **later.values}
        if not self.insert:
            return RowChange(self.lead_id, values, later.insert, later.then_set)
        then_set = tuple(dict.fromkeys((*self.then_set, *later.values)))
        return RowChange(self.lead_id, values, insert=True, then_set=then_set)


def merged(changes: list[RowChange]) -> list[RowChange]:
    """One change per lead with the effect of all of its changes in order (leads in first-seen order), so a
    batch is written as a few multi-row statements rather than one statement per recorded event."""
    per_lead: dict[str, RowChange] = {}
    for change in changes:
        earlier = per_lead.get(change.lead_id)
        per_lead[change.lead_id] = change if earlier is None else earlier.then(change)
    return list(per_lead.values())


NOT_OWNED = {"owner": None, "how": None, "claimed_at": None, "protected_until": None, "due_at": None, "due_reason": None}


def row_change(event: DomainEventProtocol) -> RowChange | None:
    """The view change one recorded event stands for (None for events the view does not show)."""
    lead_id = str(event.originator_id)
    if isinstance(event, Ownership.Registered):
        profile = {k: getattr(event, k) for k in ("region", "industry", "grade", "source", "captured_at")}
        return RowChange(lead_id, {**profile, "stage": "new"}, insert=True)
    if isinstance(event, Ownership.Regraded):
        return RowChange(lead_id, {"grade": event.grade})
    if isinstance(event, Ownership.Claimed):
        keys = ("stage", "how", "claimed_at", "protected_until", "due_at", "due_reason")
        return RowChange(lead_id, {"owner": event.rep_id, **{k: getattr(event, k) for k in keys}})
    if isinstance(event, Ownership.Released):
        return RowChange(lead_id, {**NOT_OWNED, "stage": event.stage, "released_at": event.released_at})
    if isinstance(event, Ownership.FollowedUp | Ownership.StageReached):
        keys = ("stage", "protected_until", "due_at", "due_reason")
        values = {k: getattr(event, k) for k in keys}
        if isinstance(event, Ownership.FollowedUp):
            values["last_contact_at"] = event.last_contact_at
        return RowChange(lead_id, values)
    return None


class ReadModelStore(Protocol):
    """What the projector needs from the read model (:class:`services.assignment.readmodel.ReadModel`)."""

    def position(self) -> int: ...

    def apply(self, changes: list[RowChange], after: int, position: int) -> bool: ...

    def park(self, letter: DeadLetter, after: int, position: int) -> bool: ...

    def rebuild(self, lead_id: str, changes: list[RowChange], up_to: int, entry_id: int) -> bool: ...

    def requested(self, worker: str) -> list[Entry]: ...

    def refuse(self, entry: Entry, error: str) -> None: ...


# How often the projector looks for parked events someone asked to re-drive.
REDRIVE_INTERVAL = 2.0  # seconds


class Projector:
    """Follows the application's notification log and applies it to the read model, in order."""

    def __init__(
        self,
        app: EventSourcedApplication,
        store: ReadModelStore,
        batch_size: int = 1000,
        poll_interval: float = 0.2,
        health: WorkerHealth | None = None,
        parking: StoredEventParking | None = None,
        positions: Positions | None = None,
    ):
        """``parking``: where stored events the view cannot take go (the service always gives one);
        None: such a failure raises (in-process tools and tests). ``positions``: where it reports how far
        the view is (lists wait on it to read their own writes)."""
        self.app = app
        self.store = store
        self.batch_size = batch_size
        self.position = 0
        self.follow = FollowLoop(poll_interval, health)
        self.parking = parking
        self._redrive_at = 0.0
        self.positions = positions or Positions()

    def nudge(self) -> None:
        """Something was recorded: project it now rather than at the next poll (thread-safe)."""
        self.follow.nudge()

    def stop(self) -> None:
        self.follow.stop()

    def project_once(self) -> int:
        """Apply the next batch of the log, if any (blocking); returns how many notifications it covered."""
        notifications = self.app.recorder.select_notifications(self.position + 1, self.batch_size)
        if not notifications:
            return 0
        if self.parking is None:
            return self._apply(notifications, 0, len(notifications))
        return self.parking.apply(notifications, lambda lo, hi: self._apply(notifications, lo, hi), self._park)

    def _apply(self, notifications: list[Notification], lo: int, hi: int) -> int:
        part = [n for n in notifications[lo:hi] if n.id > self.position]
        if part:
            changes = [c for n in part if (c := row_change(self.app.mapper.to_domain_event(n))) is not None]
            if self.store.apply(changes, self.position, part[-1].id):
                self.position = part[-1].id
            else:  # another instance projected this part of the log first
                self.position = self.store.position()
        return hi - lo

    def _park(self, letter: DeadLetter, notification: Notification) -> bool:
        if self.store.park(letter, self.position, notification.id):
            self.position = notification.id
            return True
        self.position = self.store.position()
        return False

    def redrive_requested(self) -> int:
        """Rebuild the row of each lead whose parked event someone asked to re-drive (blocking); how many."""
        if self.parking is None:
            return 0
        done = 0
        for entry in self.store.requested(self.parking.worker):
            lead_id = (entry.key or b"").decode()
            try:
                up_to = self.position
                events = [self.app.mapper.to_domain_event(n) for n in self.parking.lead_notifications(lead_id, up_to)]
                changes = merged([c for e in events if (c := row_change(e)) is not None])
                done += self.store.rebuild(lead_id, changes, up_to, entry.id)
            except Exception as exc:
                if transient(exc):
                    raise
                self.store.refuse(entry, error_text(exc))
                log.warning("re-drive failed; parked again", extra={"entry": entry.id, "lead_id": lead_id, "error": str(exc)})
        return done

    async def _step(self) -> int:
        if time.monotonic() >= self._redrive_at:
            self._redrive_at = time.monotonic() + REDRIVE_INTERVAL
            await asyncio.to_thread(self.redrive_requested)
        projected = await asyncio.to_thread(self.project_once)
        self.positions.reached(LOG, self.position)
        return projected

    def catch_up(self) -> None:
        """Project everything recorded so far (blocking; tests and tools)."""
        self.position = self.store.position()
        while self.project_once():
            pass

    async def run(self) -> None:
        if self.parking is not None:
            self.parking.bind(asyncio.get_running_loop())
        try:
            self.position = await asyncio.to_thread(self.store.position)
            self.positions.reached(LOG, self.position)
            await self.follow.run(self._step)
        finally:
            if self.parking is not None:
                await self.parking.close()
