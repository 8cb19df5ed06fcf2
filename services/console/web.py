"""What every page shares: who is signed in, the language and time zone, CSRF, rendering, redirects.

Pages are server-rendered Jinja2 templates; htmx enhances some forms (a claim from the pool, the new-lead
form, the import) but every form works as a plain POST too. Anything that changes state is a POST whose
CSRF token must match the session's (the login form's: a cookie of its own, double-submit).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData

from services.console.app import DirectoryApplication, Person
from services.console.clients import Backends, Caller, Refused
from services.console.config import ConsoleSettings
from services.console.i18n import HTML_LANG, LANGS, Translator, pick_lang, zone
from services.console.leadcards import LeadCards
from services.console.sessions import Session, SessionStore

SESSION_COOKIE = "lf_session"
LOGIN_CSRF_COOKIE = "lf_login_csrf"
LANG_COOKIE = "lf_lang"
TZ_COOKIE = "lf_tz"
TEMPLATES = Path(__file__).with_name("templates")

# Security headers on every page: nothing from elsewhere may load, nothing may frame the console.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

NAV: dict[str, list[tuple[str, str]]] = {
    "rep": [
        ("/", "nav.today"),
        ("/leads", "nav.my_leads"),
        ("/pool", "nav.pool"),
        ("/leads/new", "nav.new_lead"),
        ("/import", "nav.import"),
    ],
    "manager": [
        ("/", "nav.today"),
        ("/team", "nav.team"),
        ("/funnel", "nav.funnel"),
        ("/reports", "nav.reports"),
        ("/pool", "nav.pool"),
        ("/leads/new", "nav.new_lead"),
        ("/import", "nav.import"),
    ],
    "admin": [
        ("/admin/people", "nav.people"),
        ("/team", "nav.team"),
        ("/funnel", "nav.funnel"),
        ("/reports", "nav.reports"),
        ("/pool", "nav.pool"),
        ("/import", "nav.import"),
    ],
}


class SignInNeeded(Exception):
    """No live session: to the sign-in page, and back to ``next`` afterwards."""

    def __init__(self, next_url: str, expired: bool) -> None:
        self.next_url = next_url
        self.expired = expired


class CsrfRefused(Exception):
    pass


class PageForbidden(Exception):
    pass


@dataclass
class Web:
    """The console's collaborators, built once in the lifespan (``app.state.web``)."""

    settings: ConsoleSettings
    directory: DirectoryApplication
    sessions: SessionStore
    backends: Backends
    cards: LeadCards
    templates: Environment
    static_version: str


def template_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), enable_async=False)
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}
    return env


def web_of(request: Request) -> Web:
    return request.app.state.web


def translator(request: Request) -> Translator:
    web = web_of(request)
    lang = pick_lang(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))
    # The browser writes its zone percent-encoded (``Asia%2FShanghai``): cookie values cannot carry every character.
    browser_zone = unquote(request.cookies.get(TZ_COOKIE) or "") or None
    return Translator(lang, zone(browser_zone, web.settings.console_default_timezone))


@dataclass
class Viewer:
    """The signed-in person on this request."""

    person: Person
    session: Session
    t: Translator

    @property
    def username(self) -> str:
        return self.person.username

    @property
    def role(self) -> str:
        return self.person.role

    @property
    def caller(self) -> Caller:
        return Caller(self.person.username, self.person.role)

    def require(self, *roles: str) -> None:
        if self.person.role not in roles:
            raise PageForbidden()


def _here(request: Request) -> str:
    """Where the person was, to come back to after signing in: this page (GET), else the page the form was on."""
    if request.method == "GET" and not request.headers.get("hx-request"):
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = request.headers.get("referer") or request.headers.get("hx-current-url")
    if referer:
        parts = urlsplit(referer)
        if parts.netloc in ("", request.url.netloc):
            return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
    return "/"


def safe_next(value: str | None) -> str:
    """Only a path on this site (never ``//elsewhere`` or a full URL): no open redirect through sign-in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def current_viewer(request: Request) -> Viewer:
    web = web_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInNeeded(_here(request), expired=False)
    session = await web.sessions.load(token, request.app.state.clock())
    person = await asyncio.to_thread(web.directory.person, session.username) if session else None
    if session is None or person is None or not person.active:
        if session is not None:
            await web.sessions.end(token)
        raise SignInNeeded(_here(request), expired=True)
    return Viewer(person, session, translator(request))


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]


async def checked_form(request: Request, viewer: Viewer) -> FormData:
    """The form of a state-changing request, once its CSRF token proved it came from a console page."""
    form = await request.form()
    sent = form.get("csrf_token") or request.headers.get("x-csrf-token") or ""
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), viewer.session.csrf.encode()):
        raise CsrfRefused()
    return form


def login_csrf(request: Request) -> str:
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    *,
    t: Translator,
    viewer: Viewer | None = None,
    status: int = 200,
    flash: dict[str, Any] | None = None,
    **context: Any,
) -> HTMLResponse:
    web = web_of(request)
    page = web.templates.get_template(template)
    other_lang = LANGS[1 - LANGS.index(t.lang)]
    query = {k: v for k, v in request.query_params.items() if k != "lang"}
    switch = request.url.path + "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in {**query, "lang": other_lang}.items())
    html = page.render(
        t=t,
        lang=t.lang,
        html_lang=HTML_LANG[t.lang],
        viewer=viewer,
        nav=NAV.get(viewer.role, []) if viewer else [],
        path=request.url.path,
        csrf=viewer.session.csrf if viewer else context.pop("csrf", ""),
        flash=flash,
        lang_switch=switch,
        now=request.app.state.clock(),
        static_version=web.static_version,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    remember_language(request, response)
    return response


def remember_language(request: Request, response: Response) -> None:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, samesite="lax", httponly=False)


async def page(request: Request, template: str, viewer: Viewer, status: int = 200, **context: Any) -> HTMLResponse:
    """A page of a signed-in person, with the message left for it by the last command (then forgotten)."""
    flash = viewer.session.flash
    if flash is not None:
        await web_of(request).sessions.set_flash(viewer.session, None)
    return render(request, template, t=viewer.t, viewer=viewer, status=status, flash=flash, **context)


async def redirect_with(request: Request, viewer: Viewer, url: str, level: str, text: str) -> Response:
    """After a command: back to a page (303), carrying what happened to show there. htmx follows it too."""
    await web_of(request).sessions.set_flash(viewer.session, {"level": level, "text": text})
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def refusal_text(viewer: Viewer, refused: Refused, *, for_other: bool = False) -> str:
    return viewer.t.refusal(refused.kind, refused.detail, refused.body, for_other=for_other)


def now_of(request: Request) -> datetime:
    return request.app.state.clock()
