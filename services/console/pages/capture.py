"""New lead (with 查重 answered inline) and CSV import, both through intake's API as the signed-in person."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.clients import Refused
from services.console.web import CurrentViewer, Viewer, checked_form, field, is_htmx, page, render, web_of

router = APIRouter()

SOURCES = ("web_form", "trade_show", "referral", "search_ads", "phone_in", "other")
CAPTURE_FIELDS = ("name", "phone", "source", "company", "title", "industry", "region", "email", "wechat", "needs")
MAX_IMPORT_BYTES = 20 * 1024 * 1024


async def duplicate_answer(request: Request, viewer: Viewer, lead_id: str | None) -> tuple[str, str | None]:
    """Whose the existing customer is: the person's own, a colleague's or the pool's (a rep learns no more)."""
    if not lead_id:
        return viewer.t("new.dup_exists"), None
    try:
        ownership = await web_of(request).backends.ownership(viewer.caller, lead_id)
    except Refused as refused:
        if refused.kind == "not-lead-owner":
            return viewer.t("new.dup_colleague"), None
        return viewer.t("new.dup_exists"), None
    owner = ownership.get("owner")
    if owner is None:
        return viewer.t("new.dup_pool"), lead_id
    if owner == viewer.username:
        return viewer.t("new.dup_yours"), lead_id
    return viewer.t("new.dup_colleague"), lead_id if viewer.role in ("manager", "admin") else None


@router.get("/leads/new", include_in_schema=False)
async def new_lead_form(request: Request, viewer: CurrentViewer) -> Response:
    return await page(request, "new_lead.html", viewer, sources=SOURCES, form={}, result=None)


@router.post("/leads/new", include_in_schema=False)
async def new_lead(request: Request, viewer: CurrentViewer) -> Response:
    form = await checked_form(request, viewer)
    values = {name: field(form, name) for name in CAPTURE_FIELDS}
    body = {name: value for name, value in values.items() if value is not None}
    body.setdefault("name", "")
    body.setdefault("phone", "")
    body.setdefault("source", "web_form")
    if viewer.role == "rep" and form.get("claim") == "on":
        body["claim"] = True
    result: dict[str, object]
    status = 200
    try:
        created = await web_of(request).backends.capture(viewer.caller, body)
        result = {
            "ok": True,
            "text": viewer.t("new.created", score=created["score"], grade=created["grade"]),
            "lead_id": created["lead_id"],
        }
        values = {}
    except Refused as refused:
        status = refused.status
        if refused.kind == "duplicate-lead":
            text, link = await duplicate_answer(request, viewer, refused.body.get("lead_id"))
            result = {"ok": False, "duplicate": True, "text": text, "lead_id": link}
        else:
            result = {"ok": False, "text": viewer.t.refusal(refused.kind, refused.detail, refused.body)}
    if is_htmx(request):
        # The answer replaces the form's result area in place; the status stays 200 so htmx swaps it.
        return render(request, "fragments/capture_result.html", t=viewer.t, viewer=viewer, result=result)
    return await page(request, "new_lead.html", viewer, status=status, sources=SOURCES, form=values, result=result)


@router.get("/import", include_in_schema=False)
async def import_form(request: Request, viewer: CurrentViewer) -> Response:
    return await page(request, "import.html", viewer, outcome=None, error=None)


@router.post("/import", include_in_schema=False)
async def import_csv(request: Request, viewer: CurrentViewer) -> Response:
    form = await checked_form(request, viewer)
    upload = form.get("file")
    outcome = None
    error = None
    status = 200
    data = await upload.read(MAX_IMPORT_BYTES + 1) if upload is not None and hasattr(upload, "read") else b""
    if not data:
        error, status = viewer.t("import.no_file"), 422
    elif len(data) > MAX_IMPORT_BYTES:
        error, status = viewer.t("refused.content-too-large"), 413
    else:
        try:
            outcome = await web_of(request).backends.import_csv(viewer.caller, data, "text/csv")
        except Refused as refused:
            error, status = viewer.t.refusal(refused.kind, refused.detail, refused.body), refused.status
    if is_htmx(request):
        return render(request, "fragments/import_result.html", t=viewer.t, viewer=viewer, outcome=outcome, error=error)
    return await page(request, "import.html", viewer, status=status, outcome=outcome, error=error)
