"""notify telling people, against real PostgreSQL and real local servers: an SMTP server (aiosmtpd) receiving the
assigned rep's mail, group robots checking their signatures, quiet hours, digests and reminders on a fake clock."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from aiohttp import web

from services.notify.channels import EmailChannel, RobotChannel
from services.notify.domain.preferences import Preferences, QuietHours
from services.notify.housekeeping import Housekeeping
from services.notify.messages import Messages
from services.notify.messenger import Messenger
from shared.clock import FakeClock
from shared.events import FollowUpTaskScheduled, LeadCaptured, LeadClaimed, LeadWon, RepJoined, TeamChanged
from shared.retry import RetryPolicy
from tests.integration.notify_rig import Mailbox, Rig, free_port

pytestmark = pytest.mark.integration

# 10:00 in Shanghai.
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
def mailbox():
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture
def clock():
    return FakeClock(START)


@pytest.fixture
def rig(infra, fresh_schema, clock):
    rig = Rig(infra["database_url"], fresh_schema, clock)
    yield rig
    rig.close()


def messenger(rig: Rig, channels: dict) -> Messenger:
    return Messenger(
        rig.people,
        Messages(),
        channels,
        clock=rig.clock,
        backoff=RetryPolicy(attempts=100, base=1, cap=5),
        attempts=3,
        poll_interval=0.05,
        wake=asyncio.Event(),
    )


def joined(rep: str, name: str, email: str | None, team: str = "east", manager: str | None = "mgr-1", **extra) -> RepJoined:
    return RepJoined(rep_id=rep, display_name=name, role="rep", team=team, manager=manager, email=email, **extra)


def lead_of(rep_lead: str) -> LeadCaptured:
    return LeadCaptured(
        lead_id=rep_lead, name="王芳", phone="+8613800138000", source="trade_show", score=85, grade="A", captured_by="api"
    )


def assigned(lead: str, rep: str = "rep-1") -> LeadClaimed:
    return LeadClaimed(lead_id=lead, rep_id=rep, how="assign", protected_until=START + timedelta(days=30), assigned_by="mgr-1")


async def test_the_assigned_rep_gets_a_mail_with_the_lead_and_the_deadline(rig, mailbox):
    lead = str(uuid.uuid4())
    rig.publish(
        joined("mgr-1", "张经理", "zhang@example.com", team=None, manager=None), joined("rep-1", "李雷", "lilei@example.com")
    )
    rig.publish(lead_of(lead), assigned(lead))
    worker = messenger(rig, {"email": EmailChannel(mailbox.url, "LeadFlow <leadflow@example.com>", 5)})
    assert await worker.step() == 2  # planned (e-mail due now, and the feed), then sent
    ((recipients, mail),) = mailbox.messages
    assert recipients == ["lilei@example.com"]
    assert "王芳" in mail["Subject"] and "A" in mail["Subject"] and "85" in mail["Subject"]
    body = mail.get_content()
    assert "李雷" in body and "张经理" in body and "2026-03-04 10:00" in body  # claimed 10:00 + 48 h, Shanghai time
    (feed,) = rig.people.feed("rep-1", 0, 10)
    assert feed["kind"] == "lead_assigned" and feed["title"] == mail["Subject"]
    assert rig.rows("SELECT channel, state FROM {s}.sends") == [("email", "sent")]


async def test_a_won_deal_reaches_the_team_and_its_manager(rig, mailbox):
    lead = str(uuid.uuid4())
    rig.publish(
        joined("mgr-1", "张经理", "zhang@example.com", team=None, manager=None),
        joined("rep-1", "李雷", "lilei@example.com"),
        joined("rep-2", "韩梅梅", "hanmeimei@example.com"),
        joined("rep-3", "Moved Away", "moved@example.com"),
        TeamChanged(rep_id="rep-3", team="west", manager="mgr-2"),
    )
    rig.publish(lead_of(lead), LeadWon(lead_id=lead, rep_id="rep-1", amount=50000.0, currency="CNY"))
    worker = messenger(rig, {"email": EmailChannel(mailbox.url, "LeadFlow <leadflow@example.com>", 5)})
    while await worker.step():
        pass
    assert sorted(r for rs, _ in mailbox.messages for r in rs) == ["hanmeimei@example.com", "zhang@example.com"]


async def test_group_robots_get_signed_messages_mentioning_the_person(rig):
    seen: dict[str, tuple[dict, dict]] = {}

    async def robot(request: web.Request) -> web.Response:
        seen[request.match_info["name"]] = (dict(request.query), await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"} if request.match_info["name"] != "feishu" else {"code": 0})

    app = web.Application()
    app.router.add_post("/{name}", robot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    channels = {
        "wecom": RobotChannel("wecom", f"{base}/wecom?key=K", None, 5),
        "dingtalk": RobotChannel("dingtalk", f"{base}/dingtalk?access_token=T", "SECd1ng", 5),
        "feishu": RobotChannel("feishu", f"{base}/feishu", "SECfe1shu", 5),
    }
    lead = str(uuid.uuid4())
    rig.publish(joined("rep-1", "李雷", None, phone="+8613900139000"))
    rig.people.set_preferences("rep-1", Preferences(channels=("wecom", "dingtalk", "feishu")), rig.clock())
    rig.publish(lead_of(lead), assigned(lead))
    worker = messenger(rig, channels)
    try:
        while await worker.step():
            pass
    finally:
        await runner.cleanup()
        for channel in channels.values():
            await channel.close()
    query, body = seen["dingtalk"]
    expected = base64.b64encode(hmac.new(b"SECd1ng", f"{query['timestamp']}\nSECd1ng".encode(), hashlib.sha256).digest()).decode()
    assert query["sign"] == expected  # sent URL-encoded, as DingTalk requires
    assert body["at"]["atMobiles"] == ["13900139000"] and "王芳" in body["markdown"]["title"]
    _, body = seen["feishu"]
    expected = base64.b64encode(hmac.new(f"{body['timestamp']}\nSECfe1shu".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected and "王芳" in body["content"]["text"]
    query, body = seen["wecom"]
    assert query == {"key": "K"} and body["text"]["mentioned_mobile_list"] == ["13900139000"]


async def test_quiet_hours_hold_a_mail_until_they_end(rig, mailbox, clock):
    clock.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    rig.publish(joined("rep-1", "李雷", "lilei@example.com"))
    rig.people.set_preferences("rep-1", Preferences(quiet_hours=QuietHours(time(22), time(8))), clock())
    lead = str(uuid.uuid4())
    rig.publish(lead_of(lead), assigned(lead))
    worker = messenger(rig, {"email": EmailChannel(mailbox.url, "LeadFlow <l@example.com>", 5)})
    await worker.step()
    assert rig.people.feed("rep-1", 0, 10)  # the feed is not held
    clock.advance(timedelta(hours=8, minutes=59))  # 07:59
    assert await worker.step() == 0 and mailbox.messages == []
    clock.advance(timedelta(minutes=1))  # 08:00
    assert await worker.step() == 1
    assert len(mailbox.messages) == 1


async def test_a_digest_collects_the_days_messages_into_one_mail_at_digest_time(rig, mailbox, clock):
    rig.publish(joined("rep-1", "李雷", "lilei@example.com"))
    rig.people.set_preferences("rep-1", Preferences(digest=True, digest_at=time(9), language="en"), clock())
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    rig.publish(lead_of(first), assigned(first), lead_of(second), assigned(second))
    worker = messenger(rig, {"email": EmailChannel(mailbox.url, "LeadFlow <l@example.com>", 5)})
    housekeeping = Housekeeping(rig.people, rig.queue, clock, timedelta(hours=24))
    while await worker.step():
        pass
    assert mailbox.messages == [] and len(rig.people.feed("rep-1", 0, 10)) == 2
    clock.advance(timedelta(hours=22, minutes=59))  # 08:59 next day
    housekeeping.tick()
    assert await worker.step() == 0
    clock.advance(timedelta(minutes=1))  # 09:00
    housekeeping.tick()
    while await worker.step():
        pass
    ((_, mail),) = mailbox.messages
    assert mail["Subject"] == "LeadFlow daily digest: 2 messages"
    assert mail.get_content().count("New lead: 王芳") == 2
    assert len(rig.people.feed("rep-1", 0, 10)) == 2  # the digest itself is not repeated in the feed


async def test_a_task_due_soon_reminds_its_owner_before_it_is_due(rig, mailbox, clock):
    rig.publish(joined("rep-1", "李雷", "lilei@example.com"))
    lead = str(uuid.uuid4())
    task = FollowUpTaskScheduled(
        lead_id=lead, task_id="T1", rep_id="rep-1", kind="call", title="二次回访", due_at=START + timedelta(hours=2)
    )
    rig.publish(lead_of(lead), task)
    worker = messenger(rig, {"email": EmailChannel(mailbox.url, "LeadFlow <l@example.com>", 5)})
    housekeeping = Housekeeping(rig.people, rig.queue, clock, timedelta(hours=24))
    housekeeping.tick()
    assert await worker.step() == 0
    clock.advance(timedelta(hours=1, minutes=30))  # 30 minutes before it is due (the rig's rule)
    housekeeping.tick()
    while await worker.step():
        pass
    ((_, mail),) = mailbox.messages
    assert "二次回访" in mail["Subject"] and "30 分钟" in mail.get_content()
    housekeeping.tick()
    assert await worker.step() == 0  # once


async def test_a_person_without_an_address_is_skipped_on_email_but_has_the_feed(rig, mailbox):
    lead = str(uuid.uuid4())
    rig.publish(lead_of(lead), assigned(lead, rep="rep-unknown"))
    worker = messenger(rig, {"email": EmailChannel(mailbox.url, "LeadFlow <l@example.com>", 5)})
    while await worker.step():
        pass
    assert mailbox.messages == []
    assert rig.rows("SELECT state, last_error FROM {s}.sends") == [("skipped", "no e-mail address in the directory")]
    assert rig.people.feed("rep-unknown", 0, 10)[0]["kind"] == "lead_assigned"


async def test_old_notices_are_purged_with_their_sends_and_feed_items(rig, mailbox, clock):
    rig.publish(joined("rep-1", "李雷", "lilei@example.com"))
    lead = str(uuid.uuid4())
    rig.publish(lead_of(lead), assigned(lead))
    worker = messenger(rig, {"email": EmailChannel(mailbox.url, "LeadFlow <l@example.com>", 5)})
    while await worker.step():
        pass
    assert rig.people.purge(clock() - timedelta(days=30)) == 0
    clock.advance(timedelta(days=31))
    rig.people.purge(clock() - timedelta(days=30))
    counts = [rig.scalar(f"SELECT count(*) FROM {{s}}.{table}") for table in ("notices", "sends", "feed")]
    assert counts == [0, 0, 0]
