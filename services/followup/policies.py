"""Upstream events → LeadFile commands (applied by the consumer, exactly once, with the topic position)."""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from services.followup import SERVICE
from services.followup.domain.cadence import Rules
from services.followup.domain.lead_file import LeadFile, Trace, lead_file_id
from shared.consumer import Delivered
from shared.events import Grade, LeadCaptured, LeadClaimed, LeadReleased, LeadScored
from shared.eventstore import UnitOfWork

log = logging.getLogger(__name__)

OWN_SOURCE = f"/leadflow/{SERVICE}"


def _file_id_or_none(lead_id: str) -> UUID | None:
    try:
        return lead_file_id(lead_id)
    except ValueError:
        return None


class UpstreamPolicy:
    """What followup learns from the topic: the lead exists and its grade; who owns it now."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    @staticmethod
    def aggregate_ids(item: Delivered) -> list[UUID]:
        """The lead's file, which every handled event touches (looked up for a whole batch at once)."""
        file_id = _file_id_or_none(item.payload.lead_id)
        return [] if file_id is None else [file_id]

    def __call__(self, unit: UnitOfWork, item: Delivered) -> None:
        envelope, payload = item.envelope, item.payload
        if envelope.source == OWN_SOURCE:
            return
        file_id = _file_id_or_none(payload.lead_id)
        if file_id is None:
            log.warning("ignored an event whose lead_id is not a UUID", extra={"event_id": envelope.id})
            return
        trace: Trace = {"correlation_id": envelope.correlationid or envelope.id, "causation_id": envelope.id}
        at = envelope.time
        match payload:
            case LeadCaptured() | LeadScored():
                self._file(unit, file_id, payload.lead_id, payload.grade, at, trace).learn_grade(payload.grade, at, trace)
            case LeadClaimed():
                self._file(unit, file_id, payload.lead_id, None, at, trace).claim(payload.rep_id, at, self.rules, trace)
            case LeadReleased():
                file = unit.get(file_id)
                if file is not None:
                    file.release(payload.rep_id, payload.reason, at, trace)

    @staticmethod
    def _file(unit: UnitOfWork, file_id: UUID, lead_id: str, grade: Grade | None, at: datetime, trace: Trace) -> LeadFile:
        """The lead's file; opened by whichever event comes first (a claim may be all a partial history shows)."""
        file = unit.get(file_id)
        if file is None:
            file = LeadFile(lead_id=lead_id, grade=grade, at=at, trace=trace)
            unit.add(file)
        return file
