"""assignment's event-sourced application: the ownership commands, each one transaction.

Every command loads the aggregates it touches, lets the domain decide, and saves them together.
A version conflict (a concurrent claim, a follow-up just consumed) reloads and decides again, so
under contention exactly one of many claims wins and every other gets the rule that refused it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import IntegrityError, Recording

from services.assignment import repository
from services.assignment.domain import handover
from services.assignment.domain.errors import LeadNotOwned, NotLeadOwner
from services.assignment.domain.ownership import Ownership
from services.assignment.domain.rules import OwnershipRules
from shared.config import ServiceSettings
from shared.eventstore import EventSourcedApplication, UnitOfWork, eventsourcing_env
from shared.retry import COMMAND_RACES

T = TypeVar("T")
LEAD_LOCK_STRIPES = 1024
OFFBOARD_BATCH = 100


@dataclass(frozen=True)
class Owned:
    """A lead's ownership after a command."""

    lead_id: str
    rep_id: str | None
    how: str | None
    protected_until: datetime | None
    stage: str

    @classmethod
    def of(cls, lead: Ownership) -> Owned:
        return cls(lead.lead_id, lead.owner, lead.how, lead.protected_until, lead.stage)


@dataclass(frozen=True)
class Released:
    lead_id: str
    rep_id: str
    reason: str
    cooldown_until: datetime


@dataclass(frozen=True)
class Offboarded:
    rep_id: str
    transfer_to: str | None
    moved: list[str]


def eventstore_env(settings: ServiceSettings, schema: str) -> dict[str, str]:
    """The shared eventsourcing settings, with cache fast-forwarding off (see ``AssignmentApplication._record``)."""
    return eventsourcing_env(settings, schema, AGGREGATE_CACHE_FASTFORWARD="n")


class AssignmentApplication(EventSourcedApplication):
    name = "assignment"

    def __init__(self, env: dict[str, str], rules: OwnershipRules) -> None:
        super().__init__(env=env)
        self.rules = rules
        # Commands on one lead take turns inside this process: of 100 simultaneous claims the first
        # writes and the other 99 read the new owner from memory and are refused without a database
        # round trip. Across processes the event store's optimistic concurrency still decides.
        self._lead_locks = [threading.Lock() for _ in range(LEAD_LOCK_STRIPES)]

    def _lead_lock(self, lead_id: str) -> threading.Lock:
        return self._lead_locks[hash(lead_id) % LEAD_LOCK_STRIPES]

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        # With cache fast-forwarding off (eventstore_env), a command then reads its aggregates
        # from memory instead of asking PostgreSQL for newer events, and the store's unique
        # (aggregate, version) key still refuses any decision taken on a stale copy. A refused save
        # drops the copies it used, so the retry reads them afresh.
        try:
            return super()._record(processing_event)
        except IntegrityError:
            if self.repository.cache is not None:
                for aggregate_id in processing_event.aggregates:
                    with contextlib.suppress(KeyError):
                        self.repository.cache.get(aggregate_id, evict=True)
            raise

    def _transaction(self, decide: Callable[[UnitOfWork], T]) -> T:
        """Run ``decide`` on fresh aggregates and save what it changed; retry on version conflicts."""

        def attempt() -> T:
            unit = UnitOfWork(self)
            result = decide(unit)
            self.save(*unit.aggregates)
            return result

        return COMMAND_RACES.call(attempt)  # GaveUp when every try lost a race: nothing recorded

    # --- commands ------------------------------------------------------------------------------

    def settled_claim(self, lead_id: str, rep_id: str, now: datetime) -> Owned | None:
        """Answer a claim from memory when the lead's last recorded state already settles it.

        Raises the refusal (owned by someone else, closed, cooldown), or answers the ownership when
        ``rep_id`` owns the lead already; None when only :meth:`claim` can decide (the lead is free,
        or not in memory). It decides exactly as ``claim`` would from the same cached copy, which the
        cache holds only once recorded (``_record``), without a transaction or the rep's aggregate.
        """
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            lead = cache.get(UUID(lead_id))  # read only: nothing here changes the cached copy
        except KeyError:
            return None
        if not isinstance(lead, Ownership) or lead.check_claim(rep_id, "claim", now):
            return None
        return Owned.of(lead)

    def claim(self, lead_id: str, rep_id: str, now: datetime, correlation_id: str | None = None) -> Owned:
        """A rep claims a lead for themself (first come, first served)."""

        def decide(unit: UnitOfWork) -> Owned:
            lead = repository.ownership(unit, lead_id)
            # The lead's own rules first: a claim it refuses (owned, cooldown, closed) needs no rep loaded.
            if not lead.check_claim(rep_id, "claim", now):
                return Owned.of(lead)
            rep = repository.rep(unit, rep_id)
            handover.claim(lead, rep, how="claim", now=now, rules=self.rules, correlation_id=correlation_id)
            return Owned.of(lead)

        with self._lead_lock(lead_id):
            return self._transaction(decide)

    def release(
        self, lead_id: str, actor: str, *, supervisor: bool, now: datetime, correlation_id: str | None = None
    ) -> Released:
        """The owner (or a manager) gives the lead back to the pool."""

        def decide(unit: UnitOfWork) -> Released:
            lead = repository.ownership(unit, lead_id)
            if lead.owner is None:
                raise LeadNotOwned(lead_id)
            if not supervisor and lead.owner != actor:
                raise NotLeadOwner(lead_id, actor)
            owner = repository.rep(unit, lead.owner)
            handover.release(
                lead, owner, reason="manual", now=now, rules=self.rules, released_by=actor, correlation_id=correlation_id
            )
            return Released(lead_id, owner.rep_id, "manual", lead.cooldowns[owner.rep_id])

        with self._lead_lock(lead_id):
            return self._transaction(decide)

    def assign(self, lead_id: str, rep_id: str, *, by: str, now: datetime, correlation_id: str | None = None) -> Owned:
        """A manager gives the lead to ``rep_id`` (the current owner, if any, is released: ``reassigned``)."""

        def decide(unit: UnitOfWork) -> Owned:
            lead = repository.ownership(unit, lead_id)
            owner = repository.rep(unit, lead.owner) if lead.owner else None
            to = repository.rep(unit, rep_id)
            to.check_assignable(directory_required=self.rules.directory_required)
            handover.assign(lead, owner, to, now=now, rules=self.rules, assigned_by=by, correlation_id=correlation_id)
            return Owned.of(lead)

        with self._lead_lock(lead_id):
            return self._transaction(decide)

    def offboard(
        self, rep_id: str, transfer_to: str | None, *, by: str, now: datetime, correlation_id: str | None = None
    ) -> Offboarded:
        """Stop ``rep_id`` owning leads, then move every lead of theirs to ``transfer_to`` or to the pool.

        The rep is marked offboarded first, so no lead can reach them while their leads are moved;
        the moves go in batches, each one transaction. An interrupted offboarding is finished by
        calling it again (it is idempotent).
        """

        def start(unit: UnitOfWork) -> None:
            leaving = repository.rep(unit, rep_id)
            target = repository.rep(unit, transfer_to) if transfer_to is not None else None
            handover.check_offboarding(leaving, target, self.rules)
            leaving.offboard(at=now, offboarded_by=by)

        self._transaction(start)
        moved: list[str] = []
        while batch := self._transaction(lambda unit: self._move_batch(unit, rep_id, transfer_to, by, now, correlation_id)):
            moved.extend(batch)
        return Offboarded(rep_id, transfer_to, moved)

    def _move_batch(
        self, unit: UnitOfWork, rep_id: str, transfer_to: str | None, by: str, now: datetime, correlation_id: str | None
    ) -> list[str]:
        leaving = repository.rep(unit, rep_id)
        batch = list(leaving.leads)[:OFFBOARD_BATCH]
        for lead_id in batch:
            lead = repository.ownership(unit, lead_id)
            common: dict[str, Any] = {"now": now, "rules": self.rules, "correlation_id": correlation_id}
            if transfer_to is None:
                handover.release(lead, leaving, reason="rep_offboarded", released_by=by, **common)
            else:
                target = repository.rep(unit, transfer_to)
                handover.assign(lead, leaving, target, assigned_by=by, reason="rep_offboarded", **common)
        return batch

    def recycle(self, lead_ids: Iterable[str], now: datetime) -> list[Released]:
        """Release every given lead whose deadline has passed; each aggregate re-checks its own rule."""

        def decide(unit: UnitOfWork) -> list[Released]:
            released = []
            for lead_id in lead_ids:
                lead = repository.ownership(unit, lead_id)
                reason = lead.due_release(now)
                if reason is None or lead.owner is None:
                    continue
                owner = repository.rep(unit, lead.owner)
                handover.release(lead, owner, reason=reason, now=now, rules=self.rules)
                released.append(Released(lead_id, owner.rep_id, reason, lead.cooldowns[owner.rep_id]))
            return released

        return self._transaction(decide)

    # --- queries (the read model answers lists; these answer one lead from the truth) -----------

    def ownership(self, lead_id: str) -> Ownership:
        return repository.ownership(UnitOfWork(self), lead_id)
