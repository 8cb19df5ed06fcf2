"""The console's feed (per signed-in person), people's preferences, and the directory as notify knows it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from services.notify.api.schemas import (
    FeedItemOut,
    FeedPage,
    PersonOut,
    PreferencesIn,
    PreferencesOut,
    QuietHoursIn,
    ReadIn,
    ReadOut,
)
from services.notify.domain.preferences import Preferences, QuietHours, valid_timezone
from services.notify.store.people import People
from shared.auth import Principal, require_roles
from shared.problems import validation_problem
from shared.service import Now
from shared.text import SingleLine

router = APIRouter()

Person = Annotated[Principal, require_roles("rep", "manager", "admin")]
Admin = Annotated[Principal, require_roles("admin")]
Supervisor = Annotated[Principal, require_roles("manager", "admin")]
# How often a feed stream looks for new items, and sends a comment to keep proxies from closing it.
STREAM_POLL = 1.0
STREAM_KEEPALIVE = 15.0


def _people(request: Request) -> People:
    return request.app.state.people


Store = Annotated[People, Depends(_people)]


@router.get("/feed", response_model=FeedPage, tags=["feed"], summary="The caller's notifications, oldest first after `after`")
async def feed(
    store: Store,
    principal: Person,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> FeedPage:
    rows = await asyncio.to_thread(store.feed, principal.sub, after, limit)
    return FeedPage(items=[FeedItemOut(**row) for row in rows], last_id=rows[-1]["id"] if rows else after)


@router.get(
    "/feed/stream",
    tags=["feed"],
    summary="The caller's notifications as they arrive (Server-Sent Events; resumes from Last-Event-ID)",
    response_class=StreamingResponse,
)
async def feed_stream(
    request: Request,
    store: Store,
    principal: Person,
    after: Annotated[int | None, Query(ge=0, description="Start after this id (default: only new ones)")] = None,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    start = last_event_id if last_event_id is not None else after
    if start is None:
        start = await asyncio.to_thread(store.latest_feed_id, principal.sub)

    async def events() -> AsyncIterator[bytes]:
        cursor, quiet_for = start, 0.0
        yield b"retry: 3000\n\n"
        while not await request.is_disconnected():
            rows = await asyncio.to_thread(store.feed, principal.sub, cursor, 100)
            for row in rows:
                cursor = row["id"]
                data = orjson.dumps(FeedItemOut(**row).model_dump(mode="json")).decode()
                yield f"id: {cursor}\nevent: notification\ndata: {data}\n\n".encode()
            quiet_for = 0.0 if rows else quiet_for + STREAM_POLL
            if quiet_for >= STREAM_KEEPALIVE:
                quiet_for = 0.0
                yield b": keep-alive\n\n"
            if not rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.sleep(STREAM_POLL)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


@router.post("/feed/read", response_model=ReadOut, tags=["feed"], summary="Mark the caller's notifications read up to an id")
async def mark_read(body: ReadIn, store: Store, principal: Person, now: Now) -> ReadOut:
    return ReadOut(marked=await asyncio.to_thread(store.mark_read, principal.sub, body.up_to, now))


def _out(rep_id: str, prefs: Preferences, custom: bool) -> PreferencesOut:
    quiet = prefs.quiet_hours
    return PreferencesOut(
        rep_id=rep_id,
        custom=custom,
        channels=list(prefs.channels),
        quiet_hours=QuietHoursIn(start=quiet.start, end=quiet.end) if quiet else None,
        digest=prefs.digest,
        digest_at=prefs.digest_at,
        timezone=prefs.timezone,
        language=prefs.language,
    )


def _prefs(body: PreferencesIn) -> Preferences:
    if not valid_timezone(body.timezone):
        raise validation_problem([{"field": "timezone", "message": f"unknown time zone {body.timezone!r} (e.g. Asia/Shanghai)"}])
    if len(set(body.channels)) != len(body.channels):
        raise validation_problem([{"field": "channels", "message": "names a channel twice"}])
    quiet = QuietHours(body.quiet_hours.start, body.quiet_hours.end) if body.quiet_hours else None
    return Preferences(
        channels=tuple(body.channels),
        quiet_hours=quiet,
        digest=body.digest,
        digest_at=body.digest_at,
        timezone=body.timezone,
        language=body.language,
    )


@router.get("/me/preferences", response_model=PreferencesOut, tags=["preferences"], summary="How the caller is notified")
async def my_preferences(store: Store, principal: Person) -> PreferencesOut:
    prefs, custom = await asyncio.to_thread(store.preferences, principal.sub)
    return _out(principal.sub, prefs, custom)


@router.put("/me/preferences", response_model=PreferencesOut, tags=["preferences"], summary="Change how the caller is notified")
async def set_my_preferences(body: PreferencesIn, store: Store, principal: Person, now: Now) -> PreferencesOut:
    prefs = _prefs(body)
    await asyncio.to_thread(store.set_preferences, principal.sub, prefs, now)
    return _out(principal.sub, prefs, True)


@router.get("/people/{rep_id}/preferences", response_model=PreferencesOut, tags=["preferences"], summary="A person's preferences")
async def preferences_of(rep_id: SingleLine, store: Store, _: Admin) -> PreferencesOut:
    prefs, custom = await asyncio.to_thread(store.preferences, rep_id)
    return _out(rep_id, prefs, custom)


@router.put(
    "/people/{rep_id}/preferences", response_model=PreferencesOut, tags=["preferences"], summary="Set a person's preferences"
)
async def set_preferences_of(rep_id: SingleLine, body: PreferencesIn, store: Store, _: Admin, now: Now) -> PreferencesOut:
    prefs = _prefs(body)
    await asyncio.to_thread(store.set_preferences, rep_id, prefs, now)
    return _out(rep_id, prefs, True)


@router.get("/people", response_model=list[PersonOut], tags=["people"], summary="The directory as notify learnt it from events")
async def people(store: Store, _: Supervisor) -> list[PersonOut]:
    return [PersonOut(**asdict(person)) for person in await asyncio.to_thread(store.directory)]
