"""The sales pipeline of the contract and the moves a contact may make in it.

``new`` → ``assigned`` → ``contacted`` → ``qualified`` → ``quoted`` → ``negotiating`` → ``won``;
``lost`` from any open stage. A contact moves a lead forward (skipping stages is a forward move),
never back; ``new`` is re-entered only on release and ``assigned`` only by a claim, which the
assignment service decides; ``won`` and ``lost`` are final.
"""

from __future__ import annotations

from shared.events import Stage

FORWARD: tuple[Stage, ...] = ("new", "assigned", "contacted", "qualified", "quoted", "negotiating", "won")
FINAL: frozenset[Stage] = frozenset({"won", "lost"})


class StageMoveForbidden(ValueError):
    """The pipeline does not allow this move; nothing is recorded."""


def is_open(stage: Stage) -> bool:
    return stage not in FINAL


def stage_after_contact(current: Stage, requested: Stage | None) -> Stage:
    """The stage a contact leaves the lead in.

    Without a requested stage the lead stays where it is, except that the first contact moves an
    ``assigned`` (or ``new``) lead to ``contacted``. Raises :class:`StageMoveForbidden`.
    """
    if current in FINAL:
        if requested in (None, current):
            return current
        raise StageMoveForbidden(f"The lead is {current}; won and lost are final.")
    if requested is None:
        return "contacted" if current in ("new", "assigned") else current
    if requested == "lost":
        return requested
    if requested in ("new", "assigned"):
        raise StageMoveForbidden(
            f"A contact moves a lead at least to 'contacted'; '{requested}' is reached only by a release or a claim."
        )
    if FORWARD.index(requested) < FORWARD.index(current):
        raise StageMoveForbidden(f"Stages only move forward: the lead is '{current}', it cannot go back to '{requested}'.")
    return requested
