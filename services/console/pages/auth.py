"""Sign-in and sign-out. A wrong password says so and creates no session; failed attempts are limited
per username and per client address; after signing in the person goes back to where they were."""

from __future__ import annotations

import asyncio
import hmac
import math

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.console.app import SignIn
from services.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentViewer,
    checked_form,
    field,
    login_csrf,
    now_of,
    render,
    safe_next,
    translator,
    web_of,
)

router = APIRouter()


def _login_page(request: Request, *, status: int = 200, error: str | None = None, username: str = "", next_url: str = "/"):
    t = translator(request)
    token = login_csrf(request)
    notice = None
    if request.query_params.get("expired"):
        notice = t("login.expired")
    elif request.query_params.get("signed_out"):
        notice = t("login.signed_out")
    response = render(
        request,
        "login.html",
        t=t,
        status=status,
        csrf=token,
        error=error,
        notice=notice,
        username=username,
        next_url=safe_next(next_url),
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=web_of(request).settings.console_cookie_secure
    )
    return response


@router.get("/login", include_in_schema=False)
async def login_form(request: Request) -> Response:
    return _login_page(request, next_url=request.query_params.get("next") or "/")


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    web = web_of(request)
    t = translator(request)
    form = await request.form()
    username = (field(form, "username") or "").lower()
    password = form.get("password") if isinstance(form.get("password"), str) else ""
    next_url = safe_next(field(form, "next"))
    sent = field(form, "csrf_token") or ""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return render(request, "refused.html", t=t, status=403, title=t("csrf.title"), message=t("csrf.refused"))
    settings = web.settings
    now = now_of(request)
    address = request.client.host if request.client else "unknown"
    window = settings.console_login_window
    by_user, by_address = await web.sessions.failures(username, address, now - window)
    if by_user >= settings.console_login_failures_per_user or by_address >= settings.console_login_failures_per_address:
        minutes = math.ceil(window.total_seconds() / 60)
        response = _login_page(
            request, status=429, error=t("login.throttled", minutes=minutes), username=username, next_url=next_url
        )
        response.headers["Retry-After"] = str(int(window.total_seconds()))
        return response
    outcome, person = await asyncio.to_thread(web.directory.authenticate, username, str(password))
    if outcome is SignIn.WRONG or person is None:
        await web.sessions.record_failure(username, address, now, now - window)
        key = "login.inactive" if outcome is SignIn.INACTIVE else "login.wrong"
        return _login_page(
            request, status=403 if outcome is SignIn.INACTIVE else 401, error=t(key), username=username, next_url=next_url
        )
    await web.sessions.clear_failures(person.username)
    session = await web.sessions.create(person.username, now)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="lax",
        secure=settings.console_cookie_secure,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, viewer: CurrentViewer) -> Response:
    await checked_form(request, viewer)
    await web_of(request).sessions.end(viewer.session.token)
    response = RedirectResponse("/login?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
