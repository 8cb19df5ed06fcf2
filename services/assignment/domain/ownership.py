"""The Ownership aggregate: one per lead (its id is the lead's UUID). It is the truth about who owns
the lead, until when it is protected, and which deadline brings it back to the public pool.

Every event that changes the deadline carries the resulting ``due_at`` and ``due_reason``, so the
deadlines index is a plain copy of recorded facts and the scheduler can re-check them here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from services.assignment.domain.errors import LeadAlreadyOwned, LeadClosed, LeadNotOwned, ReclaimCooldown
from services.assignment.domain.rules import CLOSED_STAGES, Deadline, OwnershipRules, earliest, is_forward, reached_quoted
from shared.clock import shifted


class Ownership(Aggregate):
    """Who owns one lead, since when, until when, and what returns it to the pool."""

    @staticmethod
    def create_id(lead_id: str, **_: Any) -> UUID:
        return UUID(lead_id)

    @event("Registered")
    def __init__(
        self,
        *,
        lead_id: str,
        region: str | None,
        industry: str | None,
        grade: str,
        source: str,
        captured_at: datetime,
    ) -> None:
        self.lead_id = lead_id
        self.region = region
        self.industry = industry
        self.grade = grade
        self.source = source
        self.captured_at = captured_at
        self.stage = "new"
        self.owner: str | None = None
        self.how: str | None = None
        self.claimed_at: datetime | None = None
        self.protected_until: datetime | None = None
        self.extended = False
        self.last_contact_at: datetime | None = None
        self.contact_due: Deadline | None = None
        self.due_at: datetime | None = None
        self.due_reason: str | None = None
        self.cooldowns: dict[str, datetime] = {}

    @property
    def closed(self) -> bool:
        return self.stage in CLOSED_STAGES

    # --- profile -------------------------------------------------------------------------------

    def regrade(self, grade: str) -> None:
        if grade != self.grade:
            self._regraded(grade=grade)

    @event("Regraded")
    def _regraded(self, grade: str) -> None:
        self.grade = grade

    # --- claiming and releasing ----------------------------------------------------------------

    def check_claim(self, rep_id: str, how: str, now: datetime) -> bool:
        """Refuse a claim the rules forbid; False when ``rep_id`` owns the lead already (nothing to do)."""
        if self.owner == rep_id:
            return False
        if self.closed and how != "assign":
            raise LeadClosed(self.lead_id, self.stage)
        if self.owner is not None and how != "assign":
            raise LeadAlreadyOwned(self.lead_id)
        until = self.cooldowns.get(rep_id)
        if how == "claim" and until is not None and now < until:
            raise ReclaimCooldown(self.lead_id, rep_id, until)
        return True

    def claim(
        self,
        *,
        rep_id: str,
        how: str,
        now: datetime,
        rules: OwnershipRules,
        assigned_by: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> None:
        """Record the claim; the caller checked it (:meth:`check_claim`) and released any owner first."""
        protected_until = now + rules.protection_period
        contact_due = Deadline(now + rules.first_contact_sla, "no_first_contact")
        due = None if self.closed else earliest(contact_due, Deadline(protected_until, "protection_expired"))
        self._claimed(
            rep_id=rep_id,
            stage=self.stage if self.closed else "assigned",
            how=how,
            claimed_at=now,
            protected_until=protected_until,
            assigned_by=assigned_by,
            contact_due_at=contact_due.at,
            due_at=due.at if due else None,
            due_reason=due.reason if due else None,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )

    @event("Claimed")
    def _claimed(
        self,
        *,
        rep_id: str,
        stage: str,
        how: str,
        claimed_at: datetime,
        protected_until: datetime,
        assigned_by: str | None,
        contact_due_at: datetime,
        due_at: datetime | None,
        due_reason: str | None,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> None:
        self.owner = rep_id
        self.how = how
        self.claimed_at = claimed_at
        self.protected_until = protected_until
        self.extended = False
        self.contact_due = Deadline(contact_due_at, "no_first_contact")
        self.due_at, self.due_reason = due_at, due_reason
        self.stage = stage

    def release(
        self,
        *,
        reason: str,
        now: datetime,
        rules: OwnershipRules,
        released_by: str | None = None,
        correlation_id: str | None = None,
    ) -> str:
        """Return the lead to the pool; returns the rep it was released from."""
        if self.owner is None:
            raise LeadNotOwned(self.lead_id)
        if self.closed and reason == "manual":
            raise LeadClosed(self.lead_id, self.stage)
        rep_id = self.owner
        self._released(
            rep_id=rep_id,
            stage=self.stage if self.closed else "new",  # the contract: a released lead re-enters ``new``
            reason=reason,
            released_at=now,
            cooldown_until=now + rules.reclaim_cooldown,
            released_by=released_by,
            correlation_id=correlation_id,
        )
        return rep_id

    @event("Released")
    def _released(
        self,
        *,
        rep_id: str,
        stage: str,
        reason: str,
        released_at: datetime,
        cooldown_until: datetime,
        released_by: str | None,
        correlation_id: str | None,
    ) -> None:
        self.cooldowns[rep_id] = cooldown_until
        self.owner = self.how = self.claimed_at = self.protected_until = None
        self.extended = False
        self.contact_due = None
        self.due_at = self.due_reason = None
        self.stage = stage

    def due_release(self, now: datetime) -> str | None:
        """The recycling reason if a deadline has passed (the scheduler's re-check), else None."""
        if self.owner is None or self.closed or self.due_at is None or now < self.due_at:
            return None
        return self.due_reason

    # --- progress learnt from the topic --------------------------------------------------------

    def moves_stage(self, stage: str, rep_id: str | None, at: datetime) -> bool:
        """Whether followup's move to ``stage``, made in ``rep_id``'s ownership at ``at``, is the lead's stage now.

        assignment owns the stage: a claim makes it ``assigned``, a release ``new`` again. followup's moves
        count for the ownership they were made in: one by a former owner (made before the release, or after
        it by a followup that had not consumed the release yet) does not move a lead that changed hands
        since; followup, consuming that release, goes back to ``new`` too. ``won`` and ``lost`` count
        whoever recorded them: they are final everywhere, so followup never takes them back either."""
        if not is_forward(self.stage, stage):
            return False
        if stage in CLOSED_STAGES:
            return True
        return self.owner is not None and rep_id == self.owner and self.claimed_at is not None and at >= self.claimed_at

    def record_follow_up(
        self, *, follow_up_id: str, at: datetime, stage: str, rules: OwnershipRules, rep_id: str | None = None
    ) -> None:
        """A follow-up restarts the follow-up clock of the current ownership (if it happened during it), and
        moves the stage if it was the owner's (:meth:`moves_stage`; a manager's moves come as LeadStageChanged)."""
        during_ownership = self.owner is not None and self.claimed_at is not None and at >= self.claimed_at
        stage = stage if self.moves_stage(stage, rep_id, at) else self.stage
        if not during_ownership and stage == self.stage:
            return
        last_contact = self.last_contact_at
        contact_due = self.contact_due
        if during_ownership and (last_contact is None or at > last_contact):
            last_contact = at
            contact_due = Deadline(shifted(at, rules.follow_up_sla), "no_follow_up")  # ``at`` comes from an event
        self._followed_up(follow_up_id=follow_up_id, last_contact_at=last_contact, **self._progress(stage, contact_due, rules))

    @event("FollowedUp")
    def _followed_up(
        self,
        *,
        follow_up_id: str,
        last_contact_at: datetime | None,
        stage: str,
        protected_until: datetime | None,
        extended: bool,
        contact_due_at: datetime | None,
        contact_due_reason: str | None,
        due_at: datetime | None,
        due_reason: str | None,
    ) -> None:
        self.last_contact_at = last_contact_at
        self._apply_progress(stage, protected_until, extended, contact_due_at, contact_due_reason, due_at, due_reason)

    def record_stage(self, *, stage: str, rules: OwnershipRules, rep_id: str | None, at: datetime) -> None:
        """followup moved the lead to ``stage`` in ``rep_id``'s ownership at ``at`` (see :meth:`moves_stage`)."""
        if self.moves_stage(stage, rep_id, at):
            self._stage_reached(**self._progress(stage, self.contact_due, rules))

    @event("StageReached")
    def _stage_reached(
        self,
        *,
        stage: str,
        protected_until: datetime | None,
        extended: bool,
        contact_due_at: datetime | None,
        contact_due_reason: str | None,
        due_at: datetime | None,
        due_reason: str | None,
    ) -> None:
        self._apply_progress(stage, protected_until, extended, contact_due_at, contact_due_reason, due_at, due_reason)

    def _progress(self, stage: str, contact_due: Deadline | None, rules: OwnershipRules) -> dict[str, Any]:
        """The state after moving to ``stage`` (if forward): protection extension, next deadline."""
        new_stage = stage if is_forward(self.stage, stage) else self.stage
        protected_until, extended = self.protected_until, self.extended
        if self.owner is not None and protected_until is not None and not extended and reached_quoted(new_stage):
            protected_until, extended = shifted(protected_until, rules.protection_extension), True
        due = None
        if self.owner is not None and new_stage not in CLOSED_STAGES and contact_due and protected_until:
            due = earliest(contact_due, Deadline(protected_until, "protection_expired"))
        return {
            "stage": new_stage,
            "protected_until": protected_until,
            "extended": extended,
            "contact_due_at": contact_due.at if contact_due else None,
            "contact_due_reason": contact_due.reason if contact_due else None,
            "due_at": due.at if due else None,
            "due_reason": due.reason if due else None,
        }

    def _apply_progress(
        self,
        stage: str,
        protected_until: datetime | None,
        extended: bool,
        contact_due_at: datetime | None,
        contact_due_reason: str | None,
        due_at: datetime | None,
        due_reason: str | None,
    ) -> None:
        self.stage = stage
        self.protected_until, self.extended = protected_until, extended
        self.contact_due = Deadline(contact_due_at, contact_due_reason) if contact_due_at and contact_due_reason else None
        self.due_at, self.due_reason = due_at, due_reason
