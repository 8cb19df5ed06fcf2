"""A rep's pages: Today, My leads, the Pool (with one-click claims)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.console.clients import Refused
from services.console.i18n import parse_time
from services.console.web import (
    CurrentViewer,
    Viewer,
    checked_form,
    is_htmx,
    now_of,
    page,
    redirect_with,
    refusal_text,
    render,
    web_of,
)

router = APIRouter()

CLOSED = ("won", "lost")
GRADES = ("A", "B", "C")
POOL_FILTERS = ("region", "industry", "grade", "source")


def end_of_day(now: datetime, viewer: Viewer) -> datetime:
    local = now.astimezone(viewer.t.tz)
    return local.replace(hour=23, minute=59, second=59, microsecond=0)


@router.get("/", include_in_schema=False)
async def home(request: Request, viewer: CurrentViewer) -> Response:
    if viewer.role == "admin":
        return RedirectResponse("/admin/people", status_code=303)
    web = web_of(request)
    now = now_of(request)
    me = viewer.caller
    errors: list[str] = []

    async def safely(call: Any, default: Any) -> Any:
        try:
            return await call
        except Refused as refused:
            errors.append(refusal_text(viewer, refused))
            return default

    open_tasks, overdue, leads = await asyncio.gather(
        safely(web.backends.tasks(me, rep_id=viewer.username, status="open"), []),
        safely(web.backends.tasks(me, rep_id=viewer.username, status="overdue"), []),
        safely(web.backends.all_rep_leads(me, viewer.username), []),
    )
    today_end = end_of_day(now, viewer)
    due = [task for task in open_tasks if (parse_time(task["due_at"]) or now) <= today_end]
    open_leads = [lead for lead in leads if lead["stage"] not in CLOSED]
    soon = now + timedelta(days=1)
    warnings = sorted(
        (lead for lead in open_leads if lead.get("due_at") and (parse_time(lead["due_at"]) or soon) <= soon),
        key=lambda lead: lead["due_at"],
    )
    recent = now - timedelta(days=1)
    assigned = [
        lead
        for lead in open_leads
        if lead.get("how") in ("assign", "auto") and (parse_time(lead.get("claimed_at")) or now) >= recent
    ]
    shown = {lead["lead_id"] for lead in (*warnings, *assigned)} | {task["lead_id"] for task in (*due, *overdue)}
    names = await web.cards.profiles(me, sorted(shown))
    return await page(
        request,
        "today.html",
        viewer,
        due=sorted(due, key=lambda task: task["due_at"]),
        overdue=sorted(overdue, key=lambda task: task["due_at"]),
        warnings=warnings,
        assigned=assigned,
        open_count=len(open_leads),
        names=names,
        errors=errors,
    )


@router.get("/leads", include_in_schema=False)
async def my_leads(request: Request, viewer: CurrentViewer) -> Response:
    web = web_of(request)
    stage = request.query_params.get("stage") or None
    grade = request.query_params.get("grade") or None
    show_closed = request.query_params.get("closed") == "1"
    error = None
    try:
        rows = await web.backends.all_rep_leads(viewer.caller, viewer.username)
    except Refused as refused:
        rows, error = [], refusal_text(viewer, refused)
    rows = [
        row
        for row in rows
        if (show_closed or row["stage"] not in CLOSED)
        and (not stage or row["stage"] == stage)
        and (not grade or row["grade"] == grade)
    ]
    # What is due next first; leads without a deadline (won, lost) last.
    rows.sort(key=lambda row: (row.get("due_at") is None, row.get("due_at") or "", row["lead_id"]))
    leads = await web.cards.cards(viewer.caller, rows, masked=False)
    return await page(
        request, "my_leads.html", viewer, leads=leads, stage=stage, grade=grade, show_closed=show_closed, error=error
    )


@router.get("/pool", include_in_schema=False)
async def pool(request: Request, viewer: CurrentViewer) -> Response:
    web = web_of(request)
    filters = {name: (request.query_params.get(name) or None) for name in POOL_FILTERS}
    cursor = request.query_params.get("cursor") or None
    error = None
    try:
        found = await web.backends.pool(viewer.caller, filters, limit=50, cursor=cursor)
    except Refused as refused:
        found, error = {"items": [], "next_cursor": None}, refusal_text(viewer, refused)
    leads = await web.cards.cards(viewer.caller, found["items"], masked=viewer.role == "rep")
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    return await page(
        request, "pool.html", viewer, leads=leads, filters=filters, next_cursor=found.get("next_cursor"), query=query, error=error
    )


@router.post("/pool/{lead_id}/claim", include_in_schema=False)
async def claim_from_pool(request: Request, lead_id: str, viewer: CurrentViewer) -> Response:
    """One click in the pool: with htmx the row answers in place (claimed, or why not); without, back to the pool."""
    await checked_form(request, viewer)
    web = web_of(request)
    try:
        owned = await web.backends.claim(viewer.caller, lead_id)
    except Refused as refused:
        text = refusal_text(viewer, refused)
        if is_htmx(request):
            return render(request, "fragments/claim_result.html", t=viewer.t, viewer=viewer, ok=False, text=text, lead_id=lead_id)
        return await redirect_with(request, viewer, "/pool", "error", text)
    text = viewer.t("pool.claimed", until=viewer.t.time(owned.get("protected_until")))
    if is_htmx(request):
        return render(request, "fragments/claim_result.html", t=viewer.t, viewer=viewer, ok=True, text=text, lead_id=lead_id)
    return await redirect_with(request, viewer, f"/leads/{lead_id}", "ok", text)
