"""console's composition root: the directory, sessions, the clients of the other services, the pages,
the relay that publishes the directory's events and the live feed; run them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import SERVICE
from services.console.app import DirectoryApplication
from services.console.clients import Backends
from services.console.config import ConsoleSettings
from services.console.leadcards import LeadCards
from services.console.live import Hub, LiveFeed
from services.console.pages import admin, auth, capture, lead, live, manager, rep
from services.console.publishers import integration_mapping
from services.console.sessions import SessionStore
from services.console.web import CsrfRefused, PageForbidden, SignInNeeded, Web, is_htmx, render, template_environment, translator
from shared.clock import Clock, system_clock
from shared.eventstore import ensure_schema, eventsourcing_env
from shared.problems import OUTAGE_ERRORS, OUTAGE_RETRY_AFTER, Problem, is_outage, problem_response, unavailable
from shared.relay import OutboxRelay
from shared.service import create_service_app, serve

log = logging.getLogger(__name__)
VENDOR_FILES = ("htmx.min.js", "echarts.min.js")


def static_version(settings: ConsoleSettings) -> str:
    """Changes whenever the console's own CSS or JS does, so browsers fetch the new one."""
    digest = hashlib.sha256()
    for name in ("console.css", "console.js"):
        path = settings.console_static_dir / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def build_app(settings: ConsoleSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or ConsoleSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        missing = [name for name in VENDOR_FILES if not (settings.console_static_dir / "vendor" / name).exists()]
        if missing:
            log.warning(
                "front-end packages not built (make web): pages work, charts and in-place updates do not",
                extra={"missing": missing},
            )
        await asyncio.to_thread(ensure_schema, settings, SERVICE)
        directory = await asyncio.to_thread(DirectoryApplication, eventsourcing_env(settings, SERVICE))
        sessions = SessionStore(
            settings.database_url, SERVICE, idle=settings.console_session_idle, max_age=settings.console_session_max
        )
        await sessions.open()
        urls = {
            "intake": settings.intake_url,
            "assignment": settings.assignment_url,
            "followup": settings.followup_url,
            "analytics": settings.analytics_url,
        }
        backends = Backends(urls, settings.jwt_secret, int(settings.console_token_ttl.total_seconds()))
        await backends.open()
        app.state.web = Web(
            settings=settings,
            directory=directory,
            sessions=sessions,
            backends=backends,
            cards=LeadCards(backends),
            templates=template_environment(),
            static_version=static_version(settings),
        )
        app.state.hub = hub = Hub()
        workers = app.state.workers
        workers.start("relay", OutboxRelay.worker(directory, SERVICE, settings, integration_mapping(directory.username_of)))
        workers.start("live-feed", LiveFeed.worker(settings.kafka_bootstrap, settings.topic, hub))
        try:
            yield
        finally:
            await backends.close()
            await sessions.close()
            directory.close()

    app = create_service_app(
        service=SERVICE,
        title="LeadFlow console",
        description="The web workbench for reps, managers and admins; sign-in; the people directory.",
        settings=settings,
        lifespan=lifespan,
        clock=clock,
    )
    install_page_handlers(app)
    app.mount("/static", StaticFiles(directory=settings.console_static_dir, check_dir=False), name="static")
    for pages in (auth, capture, rep, lead, manager, admin, live):
        app.include_router(pages.router)
    return app


def install_page_handlers(app: FastAPI) -> None:
    """Pages answer in pages: sign-in when the session is gone, a refusal page for CSRF and roles."""

    @app.exception_handler(SignInNeeded)
    async def sign_in(request: Request, exc: SignInNeeded) -> Response:
        url = f"/login?next={quote(exc.next_url, safe='/')}" + ("&expired=1" if exc.expired else "")
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": url})
        if request.url.path == "/live":
            return Response(status_code=204)  # EventSource stops on 204; the page itself signs in again
        return RedirectResponse(url, status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        t = translator(request)
        return render(request, "refused.html", t=t, status=403, title=t("csrf.title"), message=t("csrf.refused"))

    @app.exception_handler(PageForbidden)
    async def forbidden(request: Request, exc: PageForbidden) -> Response:
        t = translator(request)
        return render(request, "refused.html", t=t, status=403, title=t("csrf.title"), message=t("forbidden.page"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        """A page answers a failure as a page: the console's own database unreachable is a 503 that says so."""
        outage = is_outage(exc)
        if outage:
            log.warning("dependency unavailable", extra={"error": repr(exc), "path": request.scope["path"]})
        else:
            log.error("unexpected error", exc_info=exc, extra={"path": request.scope["path"]})
        if "text/html" not in request.headers.get("accept", "") or not hasattr(request.app.state, "web"):
            return problem_response(
                unavailable() if outage else Problem(500, "internal-error", "An unexpected error occurred."), request
            )
        t = translator(request)
        message = t("refused.service-unavailable") if outage else t("common.unexpected")
        response = render(request, "refused.html", t=t, status=503 if outage else 500, title=t("common.error"), message=message)
        if outage:
            response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER)
        return response

    for outage_error in OUTAGE_ERRORS:  # the shell answers these as problems; a page answers them as a page
        app.add_exception_handler(outage_error, unexpected)

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and "text/html" in request.headers.get("accept", ""):
            t = translator(request)
            return render(request, "refused.html", t=t, status=404, title="404", message=t("notfound.page"))
        return problem_response(
            Problem(exc.status_code, "not-found" if exc.status_code == 404 else "error", str(exc.detail)), request
        )


def main() -> None:
    settings = ConsoleSettings()
    serve(build_app(settings), settings.host, settings.console_port)
