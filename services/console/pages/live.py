"""``GET /live``: the signed-in person's news as server-sent events, each a small piece of HTML in their language."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from services.console.live import Hub, News
from services.console.web import CurrentViewer, Viewer, web_of

router = APIRouter()

HEARTBEAT = 15.0  # seconds: keeps proxies from closing an idle stream, and notices a page that went away

WORDS = {
    "assigned": ("新线索分配给你", "New lead assigned to you"),
    "recycle_warning": ("线索即将被收回", "A lead is about to be recycled"),
    "recycled": ("线索已被收回到公海", "A lead was recycled to the pool"),
    "overdue": ("任务已逾期", "A task is overdue"),
    "escalated": ("团队成员的任务逾期，已升级给你", "A team member's task is overdue and escalated to you"),
}


def render_news(request: Request, viewer: Viewer, news: News) -> str:
    zh, en = WORDS.get(news.kind, (news.kind, news.kind))
    template = web_of(request).templates.get_template("fragments/news.html")
    html = template.render(t=viewer.t, text=zh if viewer.t.lang == "zh" else en, news=news, now=request.app.state.clock())
    return "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"


@router.get("/live", include_in_schema=False)
async def live(request: Request, viewer: CurrentViewer) -> StreamingResponse:
    hub: Hub = request.app.state.hub
    queue = hub.subscribe(viewer.username)

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n\n"
            while not await request.is_disconnected():
                try:
                    news = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield "event: news\n" + render_news(request, viewer, news)
        finally:
            hub.unsubscribe(viewer.username, queue)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
