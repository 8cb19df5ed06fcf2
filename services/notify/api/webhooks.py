"""Webhook subscriptions, their delivery log, re-sends and replays (admins only)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from services.notify.api.schemas import (
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    PauseIn,
    ReplayIn,
    ReplayOut,
    Resent,
    RotateIn,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionList,
    SubscriptionOut,
)
from services.notify.domain.subscriptions import InvalidSubscription, checked_types, checked_url, generate_secret, secret_key
from services.notify.guard import AddressGuard, AddressRefused
from services.notify.replaying import Replays
from services.notify.store.subscriptions import DeliveryQuery, Subscriptions
from shared.auth import Principal, require_roles
from shared.events import PAYLOADS
from shared.problems import Problem, validation_problem
from shared.service import Now
from shared.text import OptionalSingleLine

router = APIRouter(tags=["webhooks"])

Admin = Annotated[Principal, require_roles("admin")]


def _subscriptions(request: Request) -> Subscriptions:
    return request.app.state.subscriptions


def _guard(request: Request) -> AddressGuard:
    return request.app.state.guard


def _replays(request: Request) -> Replays:
    return request.app.state.replays


Store = Annotated[Subscriptions, Depends(_subscriptions)]
Guard = Annotated[AddressGuard, Depends(_guard)]
ReplayRunner = Annotated[Replays, Depends(_replays)]


def _not_found(sid: UUID) -> Problem:
    return Problem(404, "subscription-not-found", f"No webhook subscription {sid}.")


def _invalid(exc: InvalidSubscription) -> Problem:
    return validation_problem([{"field": exc.field, "message": exc.message}])


@router.post(
    "/webhooks",
    status_code=201,
    response_model=SubscriptionCreated,
    summary="Subscribe a system to events (its signing secret is returned once)",
)
async def create_subscription(
    body: SubscriptionIn, store: Store, guard: Guard, principal: Admin, now: Now
) -> SubscriptionCreated:
    try:
        url = checked_url(body.url)
        types = checked_types(body.types, PAYLOADS.keys())
        secret = body.secret if body.secret is not None else generate_secret()
        secret_key(secret)
    except InvalidSubscription as exc:
        raise _invalid(exc) from exc
    try:
        await guard.check(url)
    except AddressRefused as exc:
        raise validation_problem([{"field": "url", "message": str(exc)}]) from exc
    row = await asyncio.to_thread(store.create, uuid.uuid4(), url, types, secret, body.description, principal.sub, now)
    return SubscriptionCreated(**row, waiting=0, secret=secret)


@router.get("/webhooks", response_model=SubscriptionList, summary="Every subscription (without secrets)")
async def list_subscriptions(store: Store, _: Admin) -> SubscriptionList:
    return SubscriptionList(items=[SubscriptionOut(**row) for row in await asyncio.to_thread(store.list)])


@router.get("/webhooks/{subscription_id}", response_model=SubscriptionOut, summary="One subscription")
async def get_subscription(subscription_id: UUID, store: Store, _: Admin) -> SubscriptionOut:
    row = await asyncio.to_thread(store.get, subscription_id)
    if row is None:
        raise _not_found(subscription_id)
    return SubscriptionOut(**row)


@router.delete("/webhooks/{subscription_id}", status_code=204, summary="Unsubscribe: nothing more is delivered (the log is kept)")
async def delete_subscription(subscription_id: UUID, store: Store, _: Admin, now: Now) -> Response:
    if not await asyncio.to_thread(store.delete, subscription_id, now):
        raise _not_found(subscription_id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{subscription_id}/rotate-secret",
    response_model=SubscriptionCreated,
    summary="A new signing secret (shown once); the old one keeps signing beside it for a while",
)
async def rotate_secret(
    subscription_id: UUID, store: Store, _: Admin, now: Now, body: RotateIn | None = None
) -> SubscriptionCreated:
    body = body or RotateIn()
    secret = body.secret if body.secret is not None else generate_secret()
    try:
        secret_key(secret)
    except InvalidSubscription as exc:
        raise _invalid(exc) from exc
    until = now + timedelta(seconds=body.keep_previous_for)
    row = await asyncio.to_thread(store.rotate_secret, subscription_id, secret, until, now)
    if row is None:
        raise _not_found(subscription_id)
    return SubscriptionCreated(**row, secret=secret)


@router.post("/webhooks/{subscription_id}/pause", response_model=SubscriptionOut, summary="Hold deliveries (they wait)")
async def pause_subscription(
    subscription_id: UUID, store: Store, principal: Admin, now: Now, body: PauseIn | None = None
) -> SubscriptionOut:
    reason = (body.reason if body else None) or f"paused by {principal.sub}"
    row = await asyncio.to_thread(store.pause, subscription_id, reason, now)
    if row is None:
        raise _not_found(subscription_id)
    return SubscriptionOut(**row)


@router.post("/webhooks/{subscription_id}/resume", response_model=SubscriptionOut, summary="Deliver again, oldest first")
async def resume_subscription(subscription_id: UUID, store: Store, _: Admin, now: Now, request: Request) -> SubscriptionOut:
    row = await asyncio.to_thread(store.resume, subscription_id, now)
    if row is None:
        raise _not_found(subscription_id)
    request.app.state.wake_dispatcher()
    return SubscriptionOut(**row)


@router.post(
    "/webhooks/{subscription_id}/replay",
    status_code=202,
    response_model=ReplayOut,
    summary="Deliver again every event from a moment on (read from the start of the topic)",
)
async def replay(
    subscription_id: UUID, body: ReplayIn, store: Store, runner: ReplayRunner, principal: Admin, now: Now
) -> ReplayOut:
    if body.from_time.tzinfo is None:
        raise validation_problem([{"field": "from", "message": "must carry a UTC offset, e.g. 2026-11-23T08:00:00Z"}])
    if await asyncio.to_thread(store.get, subscription_id) is None:
        raise _not_found(subscription_id)
    ends = await runner.end_offsets()
    row = await asyncio.to_thread(store.start_replay, uuid.uuid4(), subscription_id, body.from_time, principal.sub, ends, now)
    runner.wake.set()
    return ReplayOut(**row)


@router.get("/webhooks/{subscription_id}/replays/{replay_id}", response_model=ReplayOut, summary="How a replay is going")
async def get_replay(subscription_id: UUID, replay_id: UUID, store: Store, _: Admin) -> ReplayOut:
    row = await asyncio.to_thread(store.replay, replay_id)
    if row is None or row["subscription_id"] != subscription_id:
        raise Problem(404, "replay-not-found", f"No replay {replay_id} of subscription {subscription_id}.")
    return ReplayOut(**row)


@router.get("/deliveries", response_model=DeliveryPage, tags=["deliveries"], summary="The delivery log, newest first")
async def deliveries(
    store: Store,
    _: Admin,
    subscription: UUID | None = None,
    status: DeliveryStatus | None = None,
    subject: Annotated[OptionalSingleLine, Query(description="A lead id (or a person's rep_id)")] = None,
    before: Annotated[int | None, Query(ge=1, description="Only deliveries older than this id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryPage:
    rows = await asyncio.to_thread(store.deliveries, DeliveryQuery(subscription, status, subject, before, limit + 1))
    items = [DeliveryOut(**row) for row in rows[:limit]]
    return DeliveryPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


@router.get(
    "/deliveries/{delivery_id}", response_model=DeliveryDetail, tags=["deliveries"], summary="One delivery, every attempt"
)
async def delivery(delivery_id: int, store: Store, _: Admin) -> DeliveryDetail:
    row = await asyncio.to_thread(store.delivery, delivery_id)
    if row is None:
        raise Problem(404, "delivery-not-found", f"No delivery {delivery_id}.")
    return DeliveryDetail(**row)


@router.post(
    "/deliveries/{delivery_id}/resend",
    status_code=202,
    response_model=Resent,
    tags=["deliveries"],
    summary="Deliver a parked (or delivered) event again, with the same webhook-id",
)
async def resend(delivery_id: int, store: Store, _: Admin, now: Now, request: Request) -> Resent:
    outcome = await asyncio.to_thread(store.resend, delivery_id, now)
    if outcome == "missing":
        raise Problem(404, "delivery-not-found", f"No delivery {delivery_id}.")
    if outcome == "gone":
        raise Problem(409, "subscription-deleted", "Its subscription was deleted; nothing is delivered to it any more.")
    if outcome == "pending":
        raise Problem(409, "delivery-pending", "This delivery is still waiting to be made.")
    request.app.state.wake_dispatcher()
    return Resent(id=delivery_id, status="pending")
