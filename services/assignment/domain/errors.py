"""Why a command on ownership was refused. The API maps each to a status and a problem type."""

from __future__ import annotations

from datetime import datetime


class AssignmentError(Exception):
    """A command that the rules refuse; nothing was recorded."""


class LeadAlreadyOwned(AssignmentError):
    def __init__(self, lead_id: str) -> None:
        super().__init__(f"Lead {lead_id} is already owned by another rep.")


class LeadNotOwned(AssignmentError):
    def __init__(self, lead_id: str) -> None:
        super().__init__(f"Lead {lead_id} is in the public pool; there is nothing to release.")


class NotLeadOwner(AssignmentError):
    def __init__(self, lead_id: str, rep_id: str) -> None:
        super().__init__(f"Lead {lead_id} is not owned by {rep_id}.")


class LeadClosed(AssignmentError):
    def __init__(self, lead_id: str, stage: str) -> None:
        super().__init__(f"Lead {lead_id} is {stage}; won and lost leads are not claimed or released.")
        self.stage = stage


class ReclaimCooldown(AssignmentError):
    def __init__(self, lead_id: str, rep_id: str, until: datetime) -> None:
        super().__init__(f"Lead {lead_id} was released from {rep_id}; they may claim it again from {until.isoformat()}.")
        self.until = until


class ClaimLimitReached(AssignmentError):
    def __init__(self, rep_id: str, limit: int) -> None:
        super().__init__(f"Rep {rep_id} already owns {limit} open leads, the most allowed.")
        self.limit = limit


class RepOffboarded(AssignmentError):
    def __init__(self, rep_id: str) -> None:
        super().__init__(f"Rep {rep_id} has been offboarded and cannot own leads.")


class RepUnknown(AssignmentError):
    """The people directory has not announced this rep (with ``directory_required``)."""

    def __init__(self, rep_id: str) -> None:
        super().__init__(f"Rep {rep_id} is not in the people directory.")


class RepInactive(AssignmentError):
    """The people directory deactivated this rep."""

    def __init__(self, rep_id: str) -> None:
        super().__init__(f"Rep {rep_id} is deactivated in the people directory and cannot own leads.")


class LeadNotFound(AssignmentError):
    def __init__(self, lead_id: str) -> None:
        super().__init__(f"No lead {lead_id} is known to assignment.")
