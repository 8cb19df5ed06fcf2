"""notify's composition root: its tables, the consumer, the delivery workers, the ticker and the HTTP app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from services.notify import SERVICE
from services.notify.api import router
from services.notify.channels import Channel, EmailChannel, RobotChannel
from services.notify.config import NotifySettings
from services.notify.dispatch import Dispatcher
from services.notify.domain.notices import Rules
from services.notify.domain.preferences import Channel as ChannelName
from services.notify.domain.preferences import Preferences
from services.notify.guard import AddressGuard
from services.notify.housekeeping import Housekeeping
from services.notify.messages import Messages
from services.notify.messenger import Messenger
from services.notify.replaying import Replays
from services.notify.sender import WebhookSender
from services.notify.store.people import People
from services.notify.store.queue import DeliveryQueue
from services.notify.store.subscriptions import Subscriptions
from services.notify.store.tables import Tables
from services.notify.store.topic import TopicWriter
from shared.clock import Clock, system_clock
from shared.consumer import TopicConsumer
from shared.events import PAYLOADS
from shared.eventstore import read_model_pool
from shared.retry import RetryPolicy
from shared.scheduler import Ticker
from shared.service import create_service_app, serve
from shared.supervisor import WorkerHealth

# Messages to people: a failed send is tried again within seconds, then at most every ten minutes.
PEOPLE_BACKOFF = RetryPolicy(attempts=1_000_000, base=5.0, cap=600.0)
MESSENGER_POLL = 0.5


def default_preferences(settings: NotifySettings) -> Preferences:
    """Everyone's until they choose: e-mail, every robot that is configured, and the console's feed."""
    robots: list[ChannelName] = [
        name  # type: ignore[misc]
        for name, url in (
            ("wecom", settings.wecom_webhook_url),
            ("dingtalk", settings.dingtalk_webhook_url),
            ("feishu", settings.feishu_webhook_url),
        )
        if url
    ]
    return Preferences(
        channels=("email", *robots, "feed"),
        timezone=settings.notify_timezone,
        language=settings.notify_language,
    )


def channels_from(settings: NotifySettings) -> dict[str, Channel]:
    timeout = settings.webhook_timeout.total_seconds()
    return {
        "email": EmailChannel(settings.smtp_url, settings.smtp_from, settings.smtp_timeout.total_seconds()),
        "wecom": RobotChannel("wecom", settings.wecom_webhook_url, None, timeout),
        "dingtalk": RobotChannel("dingtalk", settings.dingtalk_webhook_url, settings.dingtalk_secret, timeout),
        "feishu": RobotChannel("feishu", settings.feishu_webhook_url, settings.feishu_secret, timeout),
    }


def build_app(settings: NotifySettings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or NotifySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tables = Tables(settings.notify_schema)
        await asyncio.to_thread(tables.ensure, settings.database_url)
        pool = read_model_pool(settings.database_url, settings.db_pool_size)
        await asyncio.to_thread(pool.open, True, 30)
        loop = asyncio.get_running_loop()
        dispatcher_wake, messenger_wake = asyncio.Event(), asyncio.Event()

        def wake_dispatcher() -> None:
            loop.call_soon_threadsafe(dispatcher_wake.set)

        def wake_messenger() -> None:
            loop.call_soon_threadsafe(messenger_wake.set)

        def wake_all() -> None:
            wake_dispatcher()
            wake_messenger()

        rules = Rules(settings.first_contact_sla, settings.notify_due_soon_before, settings.notify_max_event_age)
        writer = TopicWriter(pool, tables, settings.topic, rules, clock, on_committed=wake_all)
        queue = DeliveryQueue(pool, tables, lease=settings.webhook_timeout + timedelta(seconds=30))
        guard = AddressGuard(settings.webhook_allow_private_networks)
        subscriptions = Subscriptions(pool, tables)
        people = People(pool, tables, default_preferences(settings))
        channels = channels_from(settings)
        messages = Messages()
        webhook_backoff = RetryPolicy(
            attempts=1_000_000, base=settings.webhook_retry_base.total_seconds(), cap=settings.webhook_retry_cap.total_seconds()
        )
        replays = Replays(settings, pool, tables, subscriptions, app.state.workers, clock)
        housekeeping = Housekeeping(
            people, queue, clock, settings.webhook_pause_after, wake_messenger, retention=settings.notify_retention
        )
        app.state.subscriptions, app.state.people, app.state.guard, app.state.replays = subscriptions, people, guard, replays
        app.state.wake_dispatcher = wake_dispatcher

        def consumer(health: WorkerHealth) -> TopicConsumer:
            return TopicConsumer(
                service=SERVICE,
                bootstrap=settings.kafka_bootstrap,
                topic=settings.topic,
                group_id=settings.consumer_group(SERVICE),
                load_positions=writer.load_positions,
                handle_batch=writer.handle_batch,
                worker="consumer",
                dead_letters=writer,
                batch_size=settings.consumer_batch_size,
                health=health,
                types=PAYLOADS.keys(),  # lead events and the directory's
            )

        def dispatcher(health: WorkerHealth) -> Dispatcher:
            sender = WebhookSender(guard, settings.webhook_timeout.total_seconds(), settings.webhook_max_in_flight)
            return Dispatcher(
                queue,
                sender,
                clock=clock,
                backoff=webhook_backoff,
                retry_for=settings.webhook_retry_for,
                max_in_flight=settings.webhook_max_in_flight,
                max_per_subscription=settings.webhook_max_in_flight_per_subscription,
                poll_interval=settings.webhook_poll_interval.total_seconds(),
                wake=dispatcher_wake,
                health=health,
            )

        def messenger(health: WorkerHealth) -> Messenger:
            return Messenger(
                people,
                messages,
                channels,
                clock=clock,
                backoff=PEOPLE_BACKOFF,
                attempts=settings.notify_send_attempts,
                poll_interval=MESSENGER_POLL,
                wake=messenger_wake,
                health=health,
            )

        workers = app.state.workers
        workers.start("consumer", consumer)
        workers.start("dispatcher", dispatcher)
        workers.start("messenger", messenger)
        workers.start("housekeeping", Ticker.worker("notify-housekeeping", settings.notify_tick, housekeeping.tick))
        workers.start("replays", replays.worker)
        try:
            yield  # the shell stops the workers (each finishes what it holds) before this resumes
        finally:
            for channel in channels.values():
                if isinstance(channel, RobotChannel):
                    await channel.close()
            await asyncio.to_thread(pool.close)

    app = create_service_app(
        service=SERVICE,
        title="LeadFlow notify",
        description="Notifications to people (e-mail, WeCom, DingTalk, Feishu, the console feed) and signed webhooks to systems.",
        settings=settings,
        lifespan=lifespan,
        schema=settings.notify_schema,
        clock=clock,
    )
    app.include_router(router)
    return app


def main() -> None:
    settings = NotifySettings()
    serve(build_app(settings), settings.host, settings.notify_port)
