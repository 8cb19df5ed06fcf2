"""notify's webhooks against real PostgreSQL and real local HTTP receivers: retries, order per lead, signatures
checked by a third-party verifier, exactly-once queueing, parking and re-sending, the SSRF guard, slow receivers,
pausing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from standardwebhooks import Webhook

from services.notify.dispatch import Dispatcher
from services.notify.domain.attempts import Answer, Delivered, Parked, RetryAt
from services.notify.domain.subscriptions import generate_secret
from services.notify.guard import AddressGuard, AddressRefused
from services.notify.sender import WebhookSender
from services.notify.store.queue import Outcome, Work
from services.notify.store.subscriptions import DeliveryQuery
from shared.clock import FakeClock, system_clock
from shared.events import LeadCaptured, LeadClaimed, LeadReleased, LeadScored
from shared.retry import RetryPolicy
from tests.integration.notify_rig import Receiver, Rig, until

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=1_000_000, base=0.05, cap=0.2)


@pytest.fixture
def rig(infra, fresh_schema):
    rig = Rig(infra["database_url"], fresh_schema, system_clock)
    yield rig
    rig.close()


@contextlib.asynccontextmanager
async def dispatching(rig: Rig, *, allow_private: bool = True, timeout: float = 5.0, per_subscription: int = 64):
    wake = asyncio.Event()
    sender = WebhookSender(AddressGuard(allow_private), timeout=timeout, max_connections=64)
    dispatcher = Dispatcher(
        rig.queue,
        sender,
        clock=rig.clock,
        backoff=FAST,
        retry_for=timedelta(hours=24),
        max_in_flight=128,
        max_per_subscription=per_subscription,
        poll_interval=0.05,
        wake=wake,
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, 15)


def captured(lead: str, name: str = "王芳") -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead, name=name, phone="+8613800138000", source="web_form", score=80, grade="A", captured_by="api"
    )


def claimed(lead: str) -> LeadClaimed:
    return LeadClaimed(lead_id=lead, rep_id="rep-1", how="claim", protected_until=datetime.now(UTC) + timedelta(days=30))


async def test_a_receiver_failing_twice_gets_every_event_signed_and_in_order_per_lead(rig):
    receiver = await Receiver(failures=2).start()
    secret = generate_secret()
    sid = rig.subscribe(receiver.url, secret)
    leads = [str(uuid.uuid4()), str(uuid.uuid4())]
    published = []
    for lead in leads:  # both leads on one partition, interleaved: order is per lead, not global
        published += rig.publish(captured(lead), LeadScored(lead_id=lead, score=90, grade="A"), claimed(lead))
    try:
        async with dispatching(rig):
            await until(lambda: len(receiver.accepted()) == 6)
    finally:
        await receiver.stop()
    verifier = Webhook(secret)
    for hit in receiver.hits:  # every attempt is signed, retries included
        event = verifier.verify(hit.body, hit.headers)
        assert hit.headers["content-type"] == "application/cloudevents+json"
        assert hit.headers["webhook-id"] == event["id"]
    for lead in leads:
        expected = [d.envelope.id for d in published if d.envelope.subject == lead]
        attempts = [h.headers["webhook-id"] for h in receiver.hits if orjson.loads(h.body)["subject"] == lead]
        # Each event three times (503, 503, then 2xx), and the next one only after the one before got through.
        assert attempts == [event_id for event_id in expected for _ in range(3)]
    (log,) = [d for d in rig.subscriptions.deliveries(DeliveryQuery(sid)) if d["event_id"] == published[0].envelope.id]
    detail = rig.subscriptions.delivery(log["id"])
    assert detail["status"] == "delivered" and detail["attempts"] == 3
    assert [a["status"] for a in detail["attempt_log"]] == [503, 503, 204]


async def test_each_event_is_queued_once_even_when_applied_again_or_republished(rig):
    sid = rig.subscribe("http://127.0.0.1:9/never", generate_secret())
    lead = str(uuid.uuid4())
    items = [rig.delivered(captured(lead)), rig.delivered(claimed(lead))]
    assert rig.apply(items) == 2
    assert rig.apply(items) == 0  # the same poll again (a rebalance, a restart): nothing new
    republished = rig.delivered(claimed(lead), event_id=items[1].envelope.id)  # same id, later offset
    rig.apply([republished])
    assert rig.scalar("SELECT count(*) FROM {s}.deliveries WHERE subscription_id = %s", sid) == 2
    assert rig.scalar("SELECT pending FROM {s}.lanes WHERE subscription_id = %s", sid) == 2


async def test_only_wanted_types_are_delivered(rig):
    receiver = await Receiver().start()
    rig.subscribe(receiver.url, generate_secret(), types=["LeadClaimed"])
    lead = str(uuid.uuid4())
    rig.publish(captured(lead), claimed(lead))
    try:
        async with dispatching(rig):
            await until(lambda: receiver.accepted())
            await asyncio.sleep(0.3)
    finally:
        await receiver.stop()
    assert [orjson.loads(h.body)["type"] for h in receiver.hits] == ["LeadClaimed"]


async def test_the_guard_refuses_loopback_unless_private_networks_are_allowed(rig):
    guard = AddressGuard(allow_private_networks=False)
    for url in (
        "http://127.0.0.1:8080/x",
        "http://[::1]/x",
        "http://localhost:8080/x",
        "http://169.254.169.254/latest/meta-data",
    ):
        with pytest.raises(AddressRefused):
            await guard.check(url)
    await AddressGuard(allow_private_networks=True).check("http://127.0.0.1:8080/x")
    receiver = await Receiver().start()
    sid = rig.subscribe(f"http://localhost:{receiver.port}/hooks", generate_secret())  # a name resolving to 127.0.0.1
    rig.publish(captured(str(uuid.uuid4())))
    try:
        async with dispatching(rig, allow_private=False):
            await until(lambda: rig.scalar("SELECT count(*) FROM {s}.deliveries WHERE status = 'parked'"))
    finally:
        await receiver.stop()
    assert receiver.hits == []  # nothing reached the loopback receiver
    (error,) = rig.rows("SELECT last_error FROM {s}.deliveries WHERE subscription_id = %s", sid)[0]
    assert "loopback" in error and "127.0.0.1" in error


async def test_a_slow_receiver_times_out_without_holding_back_other_subscriptions(rig):
    slow = await Receiver(delay=3.0).start()
    fast = await Receiver().start()
    slow_id = rig.subscribe(slow.url, generate_secret())
    rig.subscribe(fast.url, generate_secret())
    rig.publish(*[captured(str(uuid.uuid4())) for _ in range(20)])
    try:
        async with dispatching(rig, timeout=0.5, per_subscription=4):
            await until(lambda: len(fast.accepted()) == 20, timeout=5)
            await until(
                lambda: rig.scalar(
                    "SELECT count(*) FROM {s}.deliveries WHERE subscription_id = %s AND last_error LIKE 'no answer%%'", slow_id
                )
            )
    finally:
        await slow.stop()
        await fast.stop()
    statuses = rig.rows("SELECT DISTINCT status FROM {s}.deliveries WHERE subscription_id = %s", slow_id)
    assert statuses == [("pending",)]  # timed out, waiting to be tried again


async def test_a_4xx_is_parked_without_blocking_its_lead_and_can_be_resent(rig):
    receiver = await Receiver(status=400).start()
    sid = rig.subscribe(receiver.url, generate_secret())
    lead = str(uuid.uuid4())
    first, _ = rig.publish(captured(lead), claimed(lead))
    try:
        async with dispatching(rig):
            await until(lambda: rig.scalar("SELECT count(*) FROM {s}.deliveries WHERE status = 'parked'") == 2)
            assert len(receiver.hits) == 2  # each tried once: a refusal is not retried
            receiver.status = 204
            (delivery_id,) = rig.rows("SELECT id FROM {s}.deliveries WHERE event_id = %s", first.envelope.id)[0]
            assert rig.subscriptions.resend(delivery_id, rig.clock()) == "queued"
            await until(lambda: len(receiver.accepted()) == 1)
    finally:
        await receiver.stop()
    assert receiver.accepted()[0].headers["webhook-id"] == first.envelope.id  # the same id as before: receivers de-dup
    assert rig.subscriptions.delivery(delivery_id)["status"] == "delivered"
    assert rig.scalar("SELECT count(*) FROM {s}.lanes WHERE subscription_id = %s", sid) == 0


async def test_a_paused_subscription_waits_and_resumes_in_order(rig):
    receiver = await Receiver().start()
    sid = rig.subscribe(receiver.url, generate_secret())
    rig.subscriptions.pause(sid, "maintenance", rig.clock())
    lead = str(uuid.uuid4())
    published = rig.publish(
        captured(lead),
        claimed(lead),
        LeadReleased(lead_id=lead, rep_id="rep-1", reason="manual", cooldown_until=datetime.now(UTC) + timedelta(days=7)),
    )
    try:
        async with dispatching(rig) as dispatcher:
            await asyncio.sleep(0.5)
            assert receiver.hits == []
            rig.subscriptions.resume(sid, rig.clock())
            dispatcher.wake.set()
            await until(lambda: len(receiver.accepted()) == 3)
    finally:
        await receiver.stop()
    assert [h.headers["webhook-id"] for h in receiver.hits] == [d.envelope.id for d in published]


def test_a_subscription_failing_for_a_day_is_paused_and_its_owner_told(infra, fresh_schema):
    clock = FakeClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    rig = Rig(infra["database_url"], fresh_schema, clock)
    try:
        sid = rig.subscribe("https://hooks.example.com/in", generate_secret(), owner="admin-7")
        rig.publish(captured(str(uuid.uuid4())))
        (work,) = rig.queue.claim(clock(), 10, {}, 10)
        failed = Outcome(work, Answer(status=500, error="HTTP 500"), clock(), 0.01, RetryAt(clock() + timedelta(hours=1)))
        rig.queue.complete([failed], clock())
        clock.advance(timedelta(hours=23))
        assert rig.queue.pause_failing(clock(), timedelta(hours=24)) == []
        clock.advance(timedelta(hours=1, seconds=1))
        (paused,) = rig.queue.pause_failing(clock(), timedelta(hours=24))
        assert paused[0] == sid and paused[1] == "admin-7"
        state = rig.subscriptions.get(sid)
        assert state["state"] == "paused" and "failing" in state["paused_reason"]
        assert rig.queue.claim(clock() + timedelta(days=2), 10, {}, 10) == []  # its lanes wait
        (kind, params) = rig.rows("SELECT kind, params FROM {s}.notices WHERE recipient = 'admin-7'")[0]
        assert kind == "webhook_paused" and params["subscription_id"] == str(sid)
        rig.subscriptions.resume(sid, clock())
        (again,) = rig.queue.claim(clock(), 10, {}, 10)
        assert isinstance(again, Work) and again.delivery_id == work.delivery_id and again.failures == 1
    finally:
        rig.close()


def test_the_log_of_old_deliveries_is_purged_but_parked_ones_stay(infra, fresh_schema):
    clock = FakeClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    rig = Rig(infra["database_url"], fresh_schema, clock)
    try:
        rig.subscribe("https://hooks.example.com/in", generate_secret())
        made, refused = rig.publish(captured(str(uuid.uuid4())), captured(str(uuid.uuid4())))
        works = {w.event_id: w for w in rig.queue.claim(clock(), 10, {}, 10)}
        rig.queue.complete(
            [
                Outcome(works[made.envelope.id], Answer(status=204), clock(), 0.01, Delivered()),
                Outcome(
                    works[refused.envelope.id], Answer(status=400), clock(), 0.01, Parked("receiver answered 400", "rejected")
                ),
            ],
            clock(),
        )
        assert rig.queue.purge(clock() - timedelta(days=30)) == 0  # nothing is that old yet
        clock.advance(timedelta(days=31))
        rig.queue.purge(clock() - timedelta(days=30))
        assert rig.rows("SELECT event_id, status FROM {s}.deliveries") == [(refused.envelope.id, "parked")]
        assert rig.rows("SELECT event_id FROM {s}.webhook_events") == [(refused.envelope.id,)]  # still re-sendable
        assert rig.scalar("SELECT count(*) FROM {s}.attempts") == 1
    finally:
        rig.close()


async def test_after_a_secret_rotation_deliveries_verify_with_the_new_and_for_a_while_the_old_secret(rig):
    receiver = await Receiver().start()
    old, new = generate_secret(), generate_secret()
    sid = rig.subscribe(receiver.url, old)
    rig.subscriptions.rotate_secret(sid, new, rig.clock() + timedelta(hours=1), rig.clock())
    rig.publish(captured(str(uuid.uuid4())))
    rig.subscriptions.rotate_secret(sid, generate_secret(), rig.clock() - timedelta(seconds=1), rig.clock())
    rig.subscriptions.rotate_secret(sid, new, rig.clock() + timedelta(hours=1), rig.clock())
    try:
        async with dispatching(rig):
            await until(lambda: receiver.accepted())
    finally:
        await receiver.stop()
    (hit,) = receiver.hits
    assert Webhook(new).verify(hit.body, hit.headers)
    assert len(hit.headers["webhook-signature"].split(" ")) == 2  # new, and the one it replaced within its grace


async def test_the_connection_itself_is_only_opened_to_a_checked_address(monkeypatch):
    """Even past the per-delivery check (as if DNS answered differently a moment later: rebinding), the client's own
    resolver refuses to connect to a loopback address."""
    receiver = await Receiver().start()
    guard = AddressGuard(allow_private_networks=False)

    async def checked_earlier(url: str) -> None:  # the name resolved to a public address when it was checked
        return None

    monkeypatch.setattr(guard, "check", checked_earlier)
    sender = WebhookSender(guard, timeout=5, max_connections=4)
    try:
        answer = await sender.post(f"http://localhost:{receiver.port}/hooks", generate_secret(), "e-1", b"{}", datetime.now(UTC))
    finally:
        await sender.close()
        await receiver.stop()
    assert answer.failure == "refused-address" and "127.0.0.1" in answer.error
    assert receiver.hits == []
