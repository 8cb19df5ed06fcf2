"""CSV import: rows read as a stream are validated one by one and recorded a chunk at a time.

Each chunk is one event-store transaction, so a crash loses at most the chunk in flight, and whatever was
recorded stays. Rows carry a fingerprint of their content, so running the same file again records nothing
new: rows already recorded come back as duplicates and the rest of the file is completed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.intake.app import Captured, IntakeApplication
from services.intake.capture import InvalidLead, parse_lead, with_import_fingerprint
from services.intake.csv_rows import CsvLeadReader
from services.intake.domain import NewLead
from shared.clock import Clock

DEFAULT_SOURCE = "import"


@dataclass
class ImportReport:
    created: int = 0
    duplicates: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)


def import_csv(
    app: IntakeApplication,
    reader: CsvLeadReader,
    *,
    default_region: str,
    captured_by: str,
    role: str,
    clock: Clock,
    chunk_rows: int,
    row_offset: int = 0,
    correlation_id: str | None = None,
    on_chunk: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Record every valid row of ``reader``; ``row_offset`` shifts reported row numbers (for a file sent in pieces)."""
    report = ImportReport(ignored_columns=reader.ignored_columns)
    pending: list[NewLead] = []

    def flush() -> None:
        outcomes = app.capture_many(pending, now=clock(), correlation_id=correlation_id)
        created = sum(isinstance(outcome, Captured) for outcome in outcomes)
        report.created += created
        report.duplicates += len(outcomes) - created
        pending.clear()
        if on_chunk is not None:
            on_chunk(report)

    for row in reader:
        report.rows += 1
        number = row.number + row_offset
        if row.errors:
            report.invalid.append({"row": number, "errors": row.errors})
            continue
        try:
            new = parse_lead(
                {"source": DEFAULT_SOURCE, **row.values}, default_region=default_region, captured_by=captured_by, role=role
            )
        except InvalidLead as exc:
            report.invalid.append({"row": number, "errors": exc.errors})
            continue
        pending.append(with_import_fingerprint(new))
        if len(pending) >= chunk_rows:
            flush()
    if pending:
        flush()
    return report
