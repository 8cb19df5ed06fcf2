"""The read model of ownership (pool, reps' leads, deadlines index), projected from assignment's own
event log: each recorded Ownership event becomes one row change, applied with the log position in
one transaction, so the view is exact after any restart and can be rebuilt from position 0."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.domain import DomainEventProtocol

from services.assignment.domain.ownership import Ownership
from shared.eventstore import EventSourcedApplication
from shared.follow import FollowLoop
from shared.positions import LOG, Positions
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


class Projector:
    """Follows the application's notification log and applies it to the read model, in order."""

    def __init__(
        self,
        app: EventSourcedApplication,
        store: ReadModelStore,
        batch_size: int = 1000,
        poll_interval: float = 0.2,
        health: WorkerHealth | None = None,
        positions: Positions | None = None,
    ):
        """``positions``: where it reports how far the view is (lists wait on it to read their own writes)."""
        self.app = app
        self.store = store
        self.batch_size = batch_size
        self.position = 0
        self.follow = FollowLoop(poll_interval, health)
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
        changes = [c for n in notifications if (c := row_change(self.app.mapper.to_domain_event(n))) is not None]
        if self.store.apply(changes, self.position, notifications[-1].id):
            self.position = notifications[-1].id
        else:  # another instance projected this part of the log first
            self.position = self.store.position()
        return len(notifications)

    def catch_up(self) -> None:
        """Project everything recorded so far (blocking; tests and tools)."""
        self.position = self.store.position()
        while self.project_once():
            pass

    async def run(self) -> None:
        self.position = await asyncio.to_thread(self.store.position)
        self.positions.reached(LOG, self.position)

        async def step() -> int:
            projected = await asyncio.to_thread(self.project_once)
            self.positions.reached(LOG, self.position)
            return projected

        await self.follow.run(step)
