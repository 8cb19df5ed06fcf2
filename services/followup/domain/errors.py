"""What a LeadFile refuses, and why; the API maps each to its status code in one place."""

from __future__ import annotations


class NotOwner(PermissionError):
    """Only the lead's owner (or a manager/admin) may do this."""


class FormerOwner(NotOwner):
    """The lead was released from this rep (followup has seen it): they no longer work it."""


class NoOwner(ValueError):
    """Nobody owns the lead: it must be claimed before it is worked."""


class InvalidFollowUp(ValueError):
    """A follow-up whose fields do not fit together (e.g. lost without a reason)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


class TaskNotFound(LookupError):
    pass


class TaskNotOpen(ValueError):
    """The task was cancelled; it can no longer be completed."""
