"""What assignment does with the events it reads from the topic (applied exactly once, in the
consumer's transaction): new leads enter the pool, are owned by their reporter, or are assigned
by the rules; follow-ups and stages move the lead's deadlines."""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from services.assignment import repository
from services.assignment.domain import handover
from services.assignment.domain.errors import AssignmentError
from services.assignment.domain.ownership import Ownership
from services.assignment.domain.rep import rep_aggregate_id
from services.assignment.domain.routing import AssignmentRules, pick, rotation_id
from services.assignment.domain.rules import OwnershipRules
from shared.clock import Clock
from shared.consumer import Delivered
from shared.events import (
    FollowUpLogged,
    LeadCaptured,
    LeadLost,
    LeadScored,
    LeadStageChanged,
    LeadWon,
    RepDeactivated,
    RepJoined,
    RepReactivated,
)
from shared.eventstore import UnitOfWork

log = logging.getLogger(__name__)


# The people directory's events say which reps may be given leads.
DIRECTORY = frozenset({"RepJoined", "RepDeactivated", "RepReactivated"})
HANDLED = frozenset({"LeadCaptured", "LeadScored", "FollowUpLogged", "LeadStageChanged", "LeadWon", "LeadLost"}) | DIRECTORY


def handled(batch: list[Delivered]) -> list[Delivered]:
    """The events of a batch this policy reacts to (the topic also carries, e.g., assignment's own)."""
    return [item for item in batch if item.envelope.type in HANDLED]


class UpstreamPolicy:
    """Applies one delivered event to the aggregates of a :class:`UnitOfWork`."""

    def __init__(self, rules: OwnershipRules, routing: AssignmentRules, clock: Clock) -> None:
        self.rules = rules
        self.routing = routing
        self.clock = clock

    @staticmethod
    def aggregate_ids(item: Delivered) -> list[UUID]:
        """The lead's Ownership, which every handled event touches (looked up for a whole batch at once); the rep's
        for a directory event."""
        if isinstance(item.payload, RepJoined | RepDeactivated | RepReactivated):
            return [rep_aggregate_id(item.payload.rep_id)]
        try:
            return [UUID(item.payload.lead_id)]
        except ValueError:
            return []

    def __call__(self, unit: UnitOfWork, item: Delivered) -> None:
        payload = item.payload
        if isinstance(payload, RepJoined | RepDeactivated | RepReactivated):
            repository.rep(unit, payload.rep_id).listed_in_directory(not isinstance(payload, RepDeactivated))
            return
        if isinstance(payload, LeadCaptured):
            self.lead_captured(unit, item, payload)
            return
        if not isinstance(payload, LeadScored | FollowUpLogged | LeadStageChanged | LeadWon | LeadLost):
            return
        try:
            lead = repository.ownership(unit, payload.lead_id)
        except (AssignmentError, ValueError):
            log.warning("event for a lead assignment does not know", extra={"type": item.envelope.type, "id": item.envelope.id})
            return
        if isinstance(payload, LeadScored):
            lead.regrade(payload.grade)
            return
        if isinstance(payload, FollowUpLogged):
            at = payload.logged_at or item.envelope.time
            lead.record_follow_up(
                follow_up_id=payload.follow_up_id, at=at, stage=payload.stage, rules=self.rules, rep_id=payload.rep_id
            )
        else:
            lead.record_stage(stage=final_or_new_stage(payload), rules=self.rules, rep_id=payload.rep_id, at=item.envelope.time)
        owner = repository.rep(unit, lead.owner) if lead.closed and lead.owner else None
        handover.record_progress(lead, owner)

    def lead_captured(self, unit: UnitOfWork, item: Delivered, payload: LeadCaptured) -> None:
        try:
            aggregate_id = UUID(payload.lead_id)
        except ValueError:
            log.warning("LeadCaptured with a lead_id that is not a UUID", extra={"id": item.envelope.id})
            return
        if unit.get(aggregate_id) is not None:
            return
        lead = Ownership(
            lead_id=str(aggregate_id),
            region=payload.region,
            industry=payload.industry,
            grade=payload.grade,
            source=payload.source,
            captured_at=item.envelope.time,
        )
        unit.add(lead)
        now = self.clock()
        trace = {"correlation_id": item.envelope.correlationid, "causation_id": item.envelope.id}
        if payload.reported_by:
            reporter = repository.rep(unit, payload.reported_by)
            try:
                handover.claim(lead, reporter, how="report", now=now, rules=self.rules, **trace)
                return
            except AssignmentError as refused:
                log.info("report not honoured; the lead goes to the rules or the pool", extra={"reason": str(refused)})
        self.auto_assign(unit, lead, now, **trace)

    def auto_assign(
        self, unit: UnitOfWork, lead: Ownership, now: datetime, *, correlation_id: str | None, causation_id: str
    ) -> None:
        for rule in self.routing.matching(lead):
            open_leads: dict[str, int | None] = {}
            for rep_id in rule.reps:
                rep = repository.existing_rep(unit, rep_id)
                eligible = rep_id not in self.routing.inactive_reps and (
                    rep is None or rep.has_room(self.rules.max_leads_per_rep)
                )
                open_leads[rep_id] = (rep.open_leads if rep else 0) if eligible else None
            current = unit.get(rotation_id(rule.name))
            choice = pick(rule, open_leads, current.cursor if current else 0)
            if choice is None:
                continue
            rep_id, cursor = choice
            handover.claim(
                lead,
                repository.rep(unit, rep_id),
                how="auto",
                now=now,
                rules=self.rules,
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
            repository.rotation(unit, rule.name).move_to(cursor)
            return


def final_or_new_stage(payload: LeadStageChanged | LeadWon | LeadLost) -> str:
    if isinstance(payload, LeadStageChanged):
        return payload.to_stage
    return "won" if isinstance(payload, LeadWon) else "lost"
