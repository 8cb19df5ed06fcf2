"""Many leads at once: a JSON batch, or a CSV file streamed in."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Body, Query, Request

from services.intake import SERVICE
from services.intake.api.http import JSON_BODY, App, Capturer, Settings, media_type, require_media_types
from services.intake.api.schemas import BatchItemOut, ImportOut
from services.intake.app import Captured, Contention
from services.intake.capture import InvalidLead, parse_lead
from services.intake.csv_rows import CsvLeadReader, InvalidCsv
from services.intake.domain import NewLead
from services.intake.imports import ImportReport, import_csv
from shared.logs import correlation_id
from shared.metrics import COMMANDS
from shared.problems import Problem, validation_problem
from shared.service import AppClock, Now

router = APIRouter(tags=["leads"])

CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/vnd.ms-excel")


@router.post(
    "/leads/batch",
    response_model=list[BatchItemOut],
    response_model_exclude_none=True,
    summary="Capture up to 1,000 leads; one result per item, in order",
    dependencies=[JSON_BODY],
)
def capture_batch(
    items: Annotated[list[Any], Body(description="Leads as for POST /leads; each item is validated on its own")],
    app: App,
    settings: Settings,
    principal: Capturer,
    now: Now,
) -> list[BatchItemOut]:
    if len(items) > settings.intake_max_batch_items:
        raise validation_problem([{"field": "body", "message": f"at most {settings.intake_max_batch_items} items per batch"}])
    results: list[BatchItemOut | None] = [None] * len(items)
    valid: list[tuple[int, NewLead]] = []
    for index, item in enumerate(items):
        try:
            new = parse_lead(item, default_region=settings.default_region, captured_by=principal.sub, role=principal.role)
        except InvalidLead as exc:
            results[index] = BatchItemOut(status="invalid", errors=exc.errors)
            continue
        valid.append((index, new))
    try:
        outcomes = app.capture_many([new for _, new in valid], now=now, correlation_id=correlation_id.get())
    except Contention as exc:
        raise Problem(503, "contention", f"{exc}; try again.", headers={"Retry-After": "1"}) from None
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if isinstance(outcome, Captured):
            results[index] = BatchItemOut(
                status="created",
                lead_id=outcome.lead_id,
                score=outcome.score,
                grade=outcome.grade,
                possible_duplicates=outcome.possible_duplicates,
            )
        else:
            results[index] = BatchItemOut(status="duplicate", lead_id=outcome.lead_id)
    for status in ("created", "duplicate", "invalid"):
        COMMANDS.labels(SERVICE, "capture", status).inc(sum(1 for r in results if r is not None and r.status == status))
    return [result for result in results if result is not None]


class BodyTooLarge(Exception):
    pass


def _chunks_from_thread(stream: AsyncIterator[bytes], limit: int) -> Iterator[bytes]:
    """The request body, pulled chunk by chunk from the event loop by the worker thread reading the CSV."""

    async def next_chunk() -> bytes | None:
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None

    received = 0
    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge
        yield chunk


@router.post(
    "/leads/import",
    response_model=ImportOut,
    summary="Import a CSV file (UTF-8 with or without BOM, or GB18030; Chinese or English headers)",
    dependencies=[require_media_types(*CSV_TYPES)],
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
    responses={
        413: {"description": "Body too large"},
        415: {"description": "Not CSV"},
        422: {"description": "The header has no name or phone column"},
    },
)
async def import_leads(
    app: App,
    settings: Settings,
    principal: Capturer,
    request: Request,
    clock: AppClock,
    row_offset: Annotated[int, Query(ge=0, description="Added to row numbers (for a file sent in pieces)")] = 0,
) -> ImportOut:
    limit = settings.intake_max_import_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "content-too-large", f"The body is larger than {limit} bytes.", limit=limit)
    charset = media_type(request)[1].get("charset")
    if charset is not None:
        try:
            codecs.lookup(charset)
        except (LookupError, ValueError):  # ValueError: a NUL in the name
            raise Problem(415, "unsupported-media-type", f"Unknown charset {charset!r}; send UTF-8 or GB18030.") from None
    progress = ImportReport()

    def run() -> ImportReport:
        reader = CsvLeadReader(_chunks_from_thread(request.stream(), limit), charset)
        return import_csv(
            app,
            reader,
            default_region=settings.default_region,
            captured_by=principal.sub,
            role=principal.role,
            clock=clock,
            chunk_rows=settings.intake_import_chunk_rows,
            row_offset=row_offset,
            correlation_id=correlation_id.get(),
            on_chunk=on_chunk,
        )

    def on_chunk(report: ImportReport) -> None:
        progress.created, progress.duplicates = report.created, report.duplicates

    try:
        report = await anyio.to_thread.run_sync(run)
    except InvalidCsv as exc:
        raise validation_problem(exc.errors, "The file cannot be imported.") from None
    except BodyTooLarge:
        raise Problem(
            413,
            "content-too-large",
            f"The body is larger than {limit} bytes. The rows before the limit were recorded ({progress.created} created); "
            "split the file and send the rest: rows already recorded are recognised.",
            limit=limit,
            created=progress.created,
            duplicates=progress.duplicates,
        ) from None
    except Contention as exc:
        raise Problem(503, "contention", f"{exc}; send the file again.", headers={"Retry-After": "1"}) from None
    return ImportOut(**report.__dict__)
