"""The admin's people page: add people, deactivate and reactivate them, move them between teams."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.domain import (
    ROLES,
    DirectoryError,
    InvalidPerson,
    NotAManager,
    Profile,
    SelfDeactivation,
    UnknownUser,
    UsernameTaken,
)
from services.console.web import CurrentViewer, Viewer, checked_form, field, page, redirect_with, web_of

router = APIRouter()
BACK = "/admin/people"


def directory_refusal(viewer: Viewer, refused: DirectoryError) -> str:
    t = viewer.t
    match refused:
        case UsernameTaken():
            return t("directory.username-taken", username=refused.username)
        case UnknownUser():
            return t("directory.unknown-user", username=refused.username)
        case NotAManager():
            return t("directory.not-a-manager", username=refused.username)
        case SelfDeactivation():
            return t("directory.self")
        case InvalidPerson():
            return t(
                "directory.invalid",
                field=t(f"people.{refused.field}") if refused.field != "username" else t("people.username"),
                message=refused.message,
            )
    return str(refused)


@router.get("/admin/people", include_in_schema=False)
async def people(request: Request, viewer: CurrentViewer) -> Response:
    viewer.require("admin")
    everyone = await asyncio.to_thread(web_of(request).directory.people)
    managers = [p for p in everyone if p.role in ("manager", "admin") and p.active]
    return await page(request, "people.html", viewer, people=everyone, managers=managers, roles=ROLES, form={}, error=None)


@router.post("/admin/people", include_in_schema=False)
async def add_person(request: Request, viewer: CurrentViewer) -> Response:
    viewer.require("admin")
    form = await checked_form(request, viewer)
    directory = web_of(request).directory
    now = request.app.state.clock()
    try:
        profile = Profile.of(
            username=field(form, "username") or "",
            role=field(form, "role") or "",
            display_name=field(form, "display_name"),
            team=field(form, "team"),
            manager=field(form, "manager"),
            email=field(form, "email"),
            phone=field(form, "phone"),
        )
        added = await asyncio.to_thread(directory.add, profile, str(form.get("password") or ""), now, viewer.username)
    except DirectoryError as refused:
        everyone = await asyncio.to_thread(directory.people)
        managers = [p for p in everyone if p.role in ("manager", "admin") and p.active]
        kept = {k: v for k, v in form.items() if isinstance(v, str) and k not in ("csrf_token", "password")}
        return await page(
            request,
            "people.html",
            viewer,
            status=422,
            people=everyone,
            managers=managers,
            roles=ROLES,
            form=kept,
            error=directory_refusal(viewer, refused),
        )
    return await redirect_with(request, viewer, BACK, "ok", viewer.t("people.added", username=added.username))


@router.post("/admin/people/{username}/{action}", include_in_schema=False)
async def change_person(request: Request, username: str, action: str, viewer: CurrentViewer) -> Response:
    viewer.require("admin")
    form = await checked_form(request, viewer)
    web = web_of(request)
    now = request.app.state.clock()
    try:
        if action == "deactivate":
            await asyncio.to_thread(web.directory.deactivate, username, now, viewer.username)
            await web.sessions.end_all_of(username)
            text = viewer.t("people.deactivated", username=username)
        elif action == "reactivate":
            await asyncio.to_thread(web.directory.reactivate, username, now, viewer.username)
            text = viewer.t("people.reactivated", username=username)
        elif action == "move":
            moved = await asyncio.to_thread(
                web.directory.move, username, field(form, "team"), field(form, "manager"), now, viewer.username
            )
            text = viewer.t("people.moved", username=username, team=moved.team or "—")
        else:
            return await page(
                request, "refused.html", viewer, status=404, title=viewer.t("nav.people"), message=viewer.t("notfound.page")
            )
    except DirectoryError as refused:
        return await redirect_with(request, viewer, BACK, "error", directory_refusal(viewer, refused))
    return await redirect_with(request, viewer, BACK, "ok", text)
