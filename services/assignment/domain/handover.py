"""Commands that change hands: they keep the lead's Ownership and its reps' Rep aggregates in step.

The caller saves every aggregate passed in, in one transaction, so a lead and the count of its
owner's leads never disagree.
"""

from __future__ import annotations

from datetime import datetime

from services.assignment.domain.errors import ClaimLimitReached, RepOffboarded
from services.assignment.domain.ownership import Ownership
from services.assignment.domain.rep import Rep
from services.assignment.domain.rules import OwnershipRules


def claim(
    ownership: Ownership,
    rep: Rep,
    *,
    how: str,
    now: datetime,
    rules: OwnershipRules,
    assigned_by: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> bool:
    """``rep`` takes the unowned lead; False when the rep owns it already. Raises when refused."""
    if not ownership.check_claim(rep.rep_id, how, now):
        return False
    rep.take(ownership.lead_id, open_lead=not ownership.closed, limit=rules.max_leads_per_rep)
    ownership.claim(
        rep_id=rep.rep_id,
        how=how,
        now=now,
        rules=rules,
        assigned_by=assigned_by,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    return True


def release(
    ownership: Ownership,
    owner: Rep,
    *,
    reason: str,
    now: datetime,
    rules: OwnershipRules,
    released_by: str | None = None,
    correlation_id: str | None = None,
) -> None:
    ownership.release(reason=reason, now=now, rules=rules, released_by=released_by, correlation_id=correlation_id)
    owner.give_up(ownership.lead_id)


def assign(
    ownership: Ownership,
    owner: Rep | None,
    to: Rep,
    *,
    now: datetime,
    rules: OwnershipRules,
    assigned_by: str,
    reason: str = "reassigned",
    correlation_id: str | None = None,
) -> bool:
    """A manager gives the lead to ``to``: the current owner (if any) is released with ``reason`` first.

    False when ``to`` owns it already. The new owner's limit is checked before anything changes.
    """
    if ownership.owner == to.rep_id:
        return False
    if ownership.owner is not None and (owner is None or owner.rep_id != ownership.owner):
        raise ValueError(f"assigning lead {ownership.lead_id} needs its current owner's Rep ({ownership.owner})")
    to.take(ownership.lead_id, open_lead=not ownership.closed, limit=rules.max_leads_per_rep)
    if ownership.owner is not None and owner is not None:
        release(ownership, owner, reason=reason, now=now, rules=rules, released_by=assigned_by, correlation_id=correlation_id)
    ownership.claim(rep_id=to.rep_id, how="assign", now=now, rules=rules, assigned_by=assigned_by, correlation_id=correlation_id)
    return True


def record_progress(ownership: Ownership, owner: Rep | None) -> None:
    """After a stage change: a won or lost lead stops counting against its owner's limit."""
    if ownership.closed and owner is not None:
        owner.lead_closed(ownership.lead_id)


def check_offboarding(leaving: Rep, target: Rep | None, rules: OwnershipRules) -> None:
    """Refuse an offboarding before anything moves when the target cannot take every open lead."""
    if target is None:
        return
    if target.offboarded:
        raise RepOffboarded(target.rep_id)
    target.check_assignable(directory_required=rules.directory_required)
    if target.open_leads + leaving.open_leads > rules.max_leads_per_rep:
        raise ClaimLimitReached(target.rep_id, rules.max_leads_per_rep)
