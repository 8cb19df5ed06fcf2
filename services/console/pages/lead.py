"""One lead: profile, score and why, owner and protection, stage, the 360 timeline, open tasks; the
follow-up form, claim and release. After a command the page waits (bounded) for the views it shows to
reflect it, so the person sees what they just did."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from services.console.clients import Refused
from services.console.i18n import parse_time
from services.console.leadcards import mask_name, mask_phone
from services.console.web import (
    CurrentViewer,
    Viewer,
    checked_form,
    field,
    page,
    redirect_with,
    refusal_text,
    safe_next,
    web_of,
)
from shared.events import STAGES

router = APIRouter()

CHANNELS = ("phone", "wechat", "email", "visit", "meeting", "other")
FOLLOW_UP_TEXTS = ("summary", "pain_points", "objections", "next_step")


def lead_path(lead_id: str) -> str:
    return f"/leads/{lead_id}"


def valid_lead_id(value: str) -> str | None:
    try:
        return str(UUID(value))
    except ValueError:
        return None


async def settle(request: Request, check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check`` holds, at most the configured time: the read models trail a command by milliseconds."""
    deadline = time.monotonic() + web_of(request).settings.console_read_your_writes.total_seconds()
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except Refused:
            pass
        await asyncio.sleep(0.1)


def timeline(customer: dict[str, Any], viewer: Viewer) -> list[dict[str, Any]]:
    t = viewer.t
    entries: list[dict[str, Any]] = []
    if customer.get("captured_at"):
        text = t("event.captured", by=customer.get("captured_by") or "—", source=customer.get("source") or "—")
        entries.append({"at": customer["captured_at"], "kind": "captured", "text": text})
    for owned in customer.get("ownership_history", []):
        text = t("event.claimed", rep=owned["rep_id"], how=t.label("how", owned["how"]))
        entries.append({"at": owned["claimed_at"], "kind": "claimed", "text": text})
        if owned.get("released_at"):
            text = t("event.released", rep=owned["rep_id"], reason=t.label("reason", owned.get("release_reason")))
            entries.append({"at": owned["released_at"], "kind": "released", "text": text})
    for contact in customer.get("follow_ups", []):
        text = t(
            "event.follow_up", rep=contact["rep_id"], channel=t.label("channel", contact["channel"]), summary=contact["summary"]
        )
        details = [
            (t(f"lead.{name}"), contact.get(name)) for name in ("pain_points", "objections", "next_step") if contact.get(name)
        ]
        if contact.get("next_follow_up_at"):
            details.append((t("lead.next_at"), t.time(contact["next_follow_up_at"])))
        entries.append({"at": contact["at"], "kind": "follow_up", "text": text, "details": details})
    for move in customer.get("stage_history", []):
        entries.append({"at": move["at"], "kind": "stage", "text": t("event.stage", stage=t.label("stage", move["stage"]))})
    entries.sort(key=lambda entry: parse_time(entry["at"]) or datetime.min, reverse=True)
    return entries


async def _lead_page(
    request: Request,
    viewer: Viewer,
    lead_id: str,
    *,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    web = web_of(request)
    me = viewer.caller
    task_filter = {"lead_id": lead_id, "rep_id": viewer.username} if viewer.role == "rep" else {"lead_id": lead_id}
    results = await asyncio.gather(
        web.backends.customer(me, lead_id),
        web.backends.ownership(me, lead_id),
        web.backends.tasks(me, **task_filter),
        return_exceptions=True,
    )
    customer, ownership, tasks = (None if isinstance(r, BaseException) else r for r in results)
    refusals = [r for r in results if isinstance(r, Refused)]
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Refused):
            raise result
    if isinstance(results[1], Refused) and results[1].kind in ("not-lead-owner", "lead-not-found") and customer is None:
        refused = results[1]
        return await page(
            request,
            "refused.html",
            viewer,
            status=refused.status,
            title=viewer.t("lead.title"),
            message=refusal_text(viewer, refused),
        )
    notices = [refusal_text(viewer, r) for r in refusals if r.kind not in ("not-own-tasks",)]
    open_tasks = sorted((task for task in tasks or [] if task["status"] in ("open", "overdue")), key=lambda task: task["due_at"])
    owner = ownership.get("owner") if ownership else ((customer or {}).get("owner") or {}).get("rep_id")
    stage = (ownership or {}).get("stage") or (customer or {}).get("stage") or "new"
    score_reasons = []
    if customer and customer.get("score_history"):
        score_reasons = customer["score_history"][-1].get("reasons") or []
    profile = dict((customer or {}).get("profile") or {})
    if viewer.role == "rep" and owner != viewer.username:
        # A pool lead, as the pool shows it to reps: who to call only once it is theirs.
        profile.update(phone=mask_phone(profile.get("phone")), email=None, wechat=None, name=mask_name(profile.get("name")))
    may_work = owner == viewer.username or (owner is not None and viewer.role in ("manager", "admin"))
    return await page(
        request,
        "lead.html",
        viewer,
        status=status,
        lead_id=lead_id,
        customer=customer,
        profile=profile,
        ownership=ownership,
        owner=owner,
        stage=stage,
        stages=[s for s in STAGES if s not in ("new", "assigned")],
        channels=CHANNELS,
        entries=timeline(customer, viewer) if customer else [],
        open_tasks=open_tasks,
        score_reasons=score_reasons,
        may_work=may_work,
        may_claim=owner is None and viewer.role == "rep" and stage not in ("won", "lost"),
        may_release=owner is not None
        and (owner == viewer.username or viewer.role in ("manager", "admin"))
        and stage not in ("won", "lost"),
        error=error,
        notices=notices,
        form=form or {},
        form_key=str(uuid4()),
    )


@router.get("/leads/{lead_id}", include_in_schema=False)
async def lead(request: Request, lead_id: str, viewer: CurrentViewer) -> Response:
    checked = valid_lead_id(lead_id)
    if checked is None:
        return await page(
            request, "refused.html", viewer, status=404, title=viewer.t("lead.title"), message=viewer.t("notfound.page")
        )
    return await _lead_page(request, viewer, checked)


def follow_up_body(form: FormData, viewer: Viewer) -> dict[str, Any]:
    body: dict[str, Any] = {"channel": field(form, "channel") or "phone"}
    for name in FOLLOW_UP_TEXTS:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            body[name] = value.strip()
    body.setdefault("summary", "")
    if next_at := field(form, "next_follow_up_at"):
        try:
            local = datetime.fromisoformat(next_at)
            moment = local if local.tzinfo else local.replace(tzinfo=viewer.t.tz)
            body["next_follow_up_at"] = moment.isoformat()
        except ValueError:
            body["next_follow_up_at"] = next_at  # the service names the field in its refusal
    if stage := field(form, "stage"):
        body["stage"] = stage
        if stage == "won" and (amount := field(form, "won_amount")):
            try:
                body["won_amount"] = float(amount)
            except ValueError:
                body["won_amount"] = amount
            body["currency"] = "CNY"
        if stage == "lost":
            body["lost_reason"] = field(form, "lost_reason") or ""
    return body


@router.post("/leads/{lead_id}/follow-ups", include_in_schema=False)
async def log_follow_up(request: Request, lead_id: str, viewer: CurrentViewer) -> Response:
    form = await checked_form(request, viewer)
    checked = valid_lead_id(lead_id)
    if checked is None:
        return await page(
            request, "refused.html", viewer, status=404, title=viewer.t("lead.title"), message=viewer.t("notfound.page")
        )
    web = web_of(request)
    body = follow_up_body(form, viewer)
    # The form's own key: a double click or a resubmitted page records the follow-up once (followup replays the answer).
    key = field(form, "form_key")
    try:
        created = await web.backends.log_follow_up(viewer.caller, checked, body, idempotency_key=key)
    except Refused as refused:
        kept = {k: v for k, v in form.items() if isinstance(v, str) and k not in ("csrf_token", "form_key")}
        return await _lead_page(request, viewer, checked, status=refused.status, error=refusal_text(viewer, refused), form=kept)

    task_filter = {"lead_id": checked, "rep_id": viewer.username} if viewer.role == "rep" else {"lead_id": checked}

    async def shown() -> bool:
        """The 360 timeline has the follow-up, and followup's task board the tasks it completed or planned."""
        customer = await web.backends.customer(viewer.caller, checked)
        logged = next((f for f in customer.get("follow_ups", []) if f["follow_up_id"] == created["follow_up_id"]), None)
        if logged is None:
            return False
        at = parse_time(logged["at"])
        tasks = await web.backends.tasks(viewer.caller, **task_filter)
        return created.get("stage") in ("won", "lost") or any(
            task.get("follow_up_id") == created["follow_up_id"] or (at and (parse_time(task["scheduled_at"]) or at) >= at)
            for task in tasks
        )

    await settle(request, shown)
    text = viewer.t("lead.logged", stage=viewer.t.label("stage", created.get("stage")))
    return await redirect_with(request, viewer, lead_path(checked), "ok", text)


@router.post("/leads/{lead_id}/claim", include_in_schema=False)
async def claim(request: Request, lead_id: str, viewer: CurrentViewer) -> Response:
    await checked_form(request, viewer)
    checked = valid_lead_id(lead_id) or lead_id
    web = web_of(request)
    try:
        owned = await web.backends.claim(viewer.caller, checked)
    except Refused as refused:
        return await redirect_with(request, viewer, lead_path(checked), "error", refusal_text(viewer, refused))

    async def shown() -> bool:
        customer = await web.backends.customer(viewer.caller, checked)
        return (customer.get("owner") or {}).get("rep_id") == viewer.username

    await settle(request, shown)
    text = viewer.t("pool.claimed", until=viewer.t.time(owned.get("protected_until")))
    return await redirect_with(request, viewer, lead_path(checked), "ok", text)


@router.post("/leads/{lead_id}/release", include_in_schema=False)
async def release(request: Request, lead_id: str, viewer: CurrentViewer) -> Response:
    await checked_form(request, viewer)
    checked = valid_lead_id(lead_id) or lead_id
    web = web_of(request)
    try:
        released = await web.backends.release(viewer.caller, checked)
    except Refused as refused:
        return await redirect_with(request, viewer, lead_path(checked), "error", refusal_text(viewer, refused))

    async def shown() -> bool:
        customer = await web.backends.customer(viewer.caller, checked)
        return customer.get("owner") is None

    await settle(request, shown)
    text = viewer.t("lead.released", until=viewer.t.time(released.get("cooldown_until")))
    return await redirect_with(request, viewer, lead_path(checked), "ok", text)


@router.post("/tasks/{task_id}/complete", include_in_schema=False)
async def complete_task(request: Request, task_id: str, viewer: CurrentViewer) -> Response:
    form = await checked_form(request, viewer)
    back = safe_next(field(form, "next"))
    try:
        await web_of(request).backends.complete_task(viewer.caller, task_id)
    except Refused as refused:
        return await redirect_with(request, viewer, back, "error", refusal_text(viewer, refused))
    return await redirect_with(request, viewer, back, "ok", viewer.t("task.completed"))
