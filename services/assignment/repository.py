"""Loading assignment's aggregates inside a unit of work (one transaction per command or batch)."""

from __future__ import annotations

from uuid import UUID

from services.assignment.domain.errors import LeadNotFound
from services.assignment.domain.ownership import Ownership
from services.assignment.domain.rep import Rep, rep_aggregate_id
from services.assignment.domain.routing import Rotation, rotation_id
from shared.eventstore import UnitOfWork


def ownership(unit: UnitOfWork, lead_id: str) -> Ownership:
    found = unit.get(UUID(lead_id))
    if not isinstance(found, Ownership):
        raise LeadNotFound(lead_id)
    return found


def existing_rep(unit: UnitOfWork, rep_id: str) -> Rep | None:
    return unit.get(rep_aggregate_id(rep_id))


def rep(unit: UnitOfWork, rep_id: str) -> Rep:
    """The rep's aggregate, started on first use (reps are known by id from the tokens, not registered)."""
    found = existing_rep(unit, rep_id)
    if found is None:
        found = Rep(rep_id=rep_id)
        unit.add(found)
    return found


def rotation(unit: UnitOfWork, rule_name: str) -> Rotation:
    found = unit.get(rotation_id(rule_name))
    if found is None:
        found = Rotation(rule_name=rule_name)
        unit.add(found)
    return found
