"""A manager's pages: the funnel, reports, their team (open leads, overdue and escalated tasks), reassigning
a lead and offboarding a rep after a confirmation that says how many leads move. Managers see the people
the directory puts in their team; admins see everyone."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.app import Person
from services.console.clients import Refused
from services.console.web import CurrentViewer, Viewer, checked_form, field, page, redirect_with, refusal_text, web_of

router = APIRouter()

GROUPS = ("source", "rep", "region", "industry")
CLOSED = ("won", "lost")


async def team_members(request: Request, viewer: Viewer) -> list[Person]:
    directory = web_of(request).directory
    if viewer.role == "admin":
        people = await asyncio.to_thread(directory.people)
        return [p for p in people if p.role == "rep"]
    return await asyncio.to_thread(directory.team_of, viewer.username)


async def member(request: Request, viewer: Viewer, username: str) -> Person | None:
    return next((p for p in await team_members(request, viewer) if p.username == username), None)


@router.get("/funnel", include_in_schema=False)
async def funnel(request: Request, viewer: CurrentViewer) -> Response:
    viewer.require("manager", "admin")
    q = request.query_params
    group_by = q.get("group_by") if q.get("group_by") in GROUPS else None
    params = {"from": q.get("from") or None, "to": q.get("to") or None, "group_by": group_by}
    error = None
    try:
        report = await web_of(request).backends.report(viewer.caller, "funnel", params)
    except Refused as refused:
        report, error = None, refusal_text(viewer, refused)
    chart = None
    if report and report["groups"]:
        stages = [s["stage"] for s in report["groups"][0]["stages"]]
        chart = {
            "stages": [viewer.t.label("stage", s) for s in stages],
            "series": [
                {"name": g["key"] if group_by else viewer.t("funnel.reached"), "data": [s["reached"] for s in g["stages"]]}
                for g in report["groups"]
            ],
        }
    return await page(request, "funnel.html", viewer, report=report, chart=chart, params=params, groups=GROUPS, error=error)


@router.get("/reports", include_in_schema=False)
async def reports(request: Request, viewer: CurrentViewer) -> Response:
    viewer.require("manager", "admin")
    backends = web_of(request).backends
    results = await asyncio.gather(
        backends.report(viewer.caller, "response-time", {"group_by": "rep"}),
        backends.report(viewer.caller, "response-time", {"group_by": "source"}),
        backends.report(viewer.caller, "leaderboard", {}),
        return_exceptions=True,
    )
    errors = sorted({refusal_text(viewer, r) for r in results if isinstance(r, Refused)})
    by_rep, by_source, board = (None if isinstance(r, BaseException) else r for r in results)
    return await page(request, "reports.html", viewer, by_rep=by_rep, by_source=by_source, board=board, errors=errors)


@router.get("/team", include_in_schema=False)
async def team(request: Request, viewer: CurrentViewer) -> Response:
    viewer.require("manager", "admin")
    backends = web_of(request).backends
    members = await team_members(request, viewer)
    errors: list[str] = []

    async def row(person: Person) -> dict[str, Any]:
        try:
            leads, overdue = await asyncio.gather(
                backends.all_rep_leads(viewer.caller, person.username),
                backends.tasks(viewer.caller, rep_id=person.username, status="overdue"),
            )
        except Refused as refused:
            errors.append(refusal_text(viewer, refused))
            leads, overdue = [], []
        return {"person": person, "open": sum(1 for lead in leads if lead["stage"] not in CLOSED), "overdue": len(overdue)}

    rows = await asyncio.gather(*(row(p) for p in members))
    try:
        escalated = await backends.tasks(viewer.caller, escalated_to=viewer.username, status="overdue")
    except Refused as refused:
        escalated = []
        errors.append(refusal_text(viewer, refused))
    names = await web_of(request).cards.profiles(viewer.caller, sorted({task["lead_id"] for task in escalated}))
    return await page(request, "team.html", viewer, rows=rows, escalated=escalated, names=names, errors=sorted(set(errors)))


@router.get("/team/{username}", include_in_schema=False)
async def rep_leads(request: Request, username: str, viewer: CurrentViewer) -> Response:
    viewer.require("manager", "admin")
    person = await member(request, viewer, username)
    if person is None:
        return await page(
            request, "refused.html", viewer, status=404, title=viewer.t("nav.team"), message=viewer.t("refused.not-your-leads")
        )
    web = web_of(request)
    error = None
    try:
        rows = await web.backends.all_rep_leads(viewer.caller, username)
    except Refused as refused:
        rows, error = [], refusal_text(viewer, refused)
    rows.sort(key=lambda row: (row["stage"] in CLOSED, row.get("due_at") or "", row["lead_id"]))
    leads = await web.cards.cards(viewer.caller, rows, masked=False)
    others = [p for p in await team_members(request, viewer) if p.username != username and p.active]
    return await page(request, "team_rep.html", viewer, person=person, leads=leads, others=others, error=error)


@router.post("/team/leads/{lead_id}/reassign", include_in_schema=False)
async def reassign(request: Request, lead_id: str, viewer: CurrentViewer) -> Response:
    viewer.require("manager", "admin")
    form = await checked_form(request, viewer)
    target = field(form, "rep_id") or ""
    back = f"/team/{field(form, 'from') or ''}" if field(form, "from") else "/team"
    if await member(request, viewer, target) is None:
        return await redirect_with(request, viewer, back, "error", viewer.t("refused.rep-unknown"))
    try:
        await web_of(request).backends.assign(viewer.caller, lead_id, target)
    except Refused as refused:
        return await redirect_with(request, viewer, back, "error", refusal_text(viewer, refused, for_other=True))
    return await redirect_with(request, viewer, back, "ok", viewer.t("team.reassigned", rep=target))


@router.get("/team/{username}/offboard", include_in_schema=False)
async def offboard_confirm(request: Request, username: str, viewer: CurrentViewer) -> Response:
    """The confirmation: who takes the leads, and how many move."""
    viewer.require("manager", "admin")
    person = await member(request, viewer, username)
    if person is None:
        return await page(
            request, "refused.html", viewer, status=404, title=viewer.t("nav.team"), message=viewer.t("refused.not-your-leads")
        )
    transfer_to = request.query_params.get("transfer_to") or None
    others = [p for p in await team_members(request, viewer) if p.username != username and p.active]
    if transfer_to and transfer_to not in {p.username for p in others}:
        transfer_to = None
    error = None
    try:
        leads = await web_of(request).backends.all_rep_leads(viewer.caller, username)
    except Refused as refused:
        leads, error = [], refusal_text(viewer, refused)
    # The open leads are what the rep was working; a successor also takes the won and lost customers.
    count = sum(1 for lead in leads if lead["stage"] not in CLOSED)
    confirming = "transfer_to" in request.query_params
    return await page(
        request,
        "offboard.html",
        viewer,
        person=person,
        others=others,
        transfer_to=transfer_to,
        count=count,
        confirming=confirming,
        error=error,
    )


@router.post("/team/{username}/offboard", include_in_schema=False)
async def offboard(request: Request, username: str, viewer: CurrentViewer) -> Response:
    viewer.require("manager", "admin")
    form = await checked_form(request, viewer)
    web = web_of(request)
    person = await member(request, viewer, username)
    if person is None:
        return await redirect_with(request, viewer, "/team", "error", viewer.t("refused.not-your-leads"))
    transfer_to = field(form, "transfer_to")
    if transfer_to and await member(request, viewer, transfer_to) is None:
        return await redirect_with(request, viewer, f"/team/{username}/offboard", "error", viewer.t("refused.rep-unknown"))
    try:
        done = await web.backends.offboard(viewer.caller, username, transfer_to)
    except Refused as refused:
        return await redirect_with(
            request, viewer, f"/team/{username}/offboard", "error", refusal_text(viewer, refused, for_other=True)
        )
    # assignment has moved every lead and will give the rep no more; now the person may no longer sign in.
    now = request.app.state.clock()
    await asyncio.to_thread(web.directory.deactivate, username, now, viewer.username)
    await web.sessions.end_all_of(username)
    target = transfer_to or viewer.t("team.offboard_pool")
    return await redirect_with(
        request, viewer, "/team", "ok", viewer.t("team.offboarded", rep=person.display_name, count=done["moved"], target=target)
    )
