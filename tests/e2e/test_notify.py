"""notify end to end: the services as processes, a real SMTP server, real webhook receivers on this machine."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook

from shared.events import RepJoined, encode, kafka_headers, make_envelope
from tests.e2e.conftest import auth, eventually

pytestmark = pytest.mark.e2e

ADMIN = auth("admin", "admin-1")


@pytest.fixture(autouse=True)
def _needs_notify(services):
    # Never a skip: a run that leaves notify out (LEADFLOW_E2E_SERVICES) must not report its tests as passed.
    if "notify" not in services.ports:
        pytest.fail("notify is not among LEADFLOW_E2E_SERVICES: these tests need it")


class Receiver:
    """A real HTTP server on a free port that answers 503 to the first ``failures`` attempts of each webhook-id."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.hits: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    seen = sum(1 for h, _, _ in receiver.hits if h["webhook-id"] == headers["webhook-id"])
                    status = 503 if seen < receiver.failures else 204
                    receiver.hits.append((headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/leadflow"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for h, b, status in self.hits if status == 204]

    def close(self) -> None:
        self.server.shutdown()


def publish_directory(services, *people: RepJoined) -> None:
    """The console's directory is another service: its events go straight onto the topic, as it would publish them."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=services.env["LEADFLOW_KAFKA_BOOTSTRAP"])
        await producer.start()
        try:
            for person in people:
                envelope = make_envelope(person, service="console", time=datetime.now(UTC))
                await producer.send_and_wait(
                    services.env["LEADFLOW_TOPIC"], encode(envelope), key=person.rep_id.encode(), headers=kafka_headers(envelope)
                )
        finally:
            await producer.stop()

    asyncio.run(send())


def capture(services, name: str) -> str:
    body = {"name": name, "phone": "139" + str(uuid.uuid4().int)[:8], "source": "trade_show", "company": "华东制造"}
    response = httpx.post(f"{services.url('intake')}/leads", json=body, headers=auth("manager", "mgr-1"), timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["lead_id"]


def assign(services, lead_id: str, rep: str) -> None:
    def done():
        response = httpx.post(
            f"{services.url('assignment')}/leads/{lead_id}/assign", json={"rep_id": rep}, headers=auth("manager", "mgr-1")
        )
        assert response.status_code == 200, response.text
        return True

    eventually(done)


def subscribe(services, url: str, **body) -> dict:
    response = httpx.post(f"{services.url('notify')}/webhooks", json={"url": url, **body}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def test_the_assigned_rep_is_mailed_and_sees_it_in_the_feed(services):
    rep = f"rep-{uuid.uuid4().hex[:8]}"
    email = f"{rep}@example.com"
    publish_directory(services, RepJoined(rep_id=rep, display_name="李雷", role="rep", team="east", email=email))
    lead = capture(services, "王芳")
    assign(services, lead, rep)
    # Its first-contact task (due within seconds in the e2e SOP) is reminded too: the assignment is the mail naming the lead.
    (mail,) = eventually(lambda: [m for m in services.mailbox.to(email) if "新线索" in m["Subject"]], timeout=30)
    assert "王芳" in mail["Subject"]
    assert "李雷" in mail.get_content()
    feed = httpx.get(f"{services.url('notify')}/feed", headers=auth("rep", rep)).json()["items"]
    assert (feed[0]["kind"], feed[0]["lead_id"], feed[0]["title"]) == ("lead_assigned", lead, mail["Subject"])
    # The e2e SOP makes the first-contact task due within seconds: its reminder follows, also in the feed.
    later = httpx.get(f"{services.url('notify')}/feed", params={"after": feed[0]["id"]}, headers=auth("rep", rep)).json()
    assert all(item["id"] > feed[0]["id"] for item in later["items"])
    assert {item["kind"] for item in later["items"]} <= {"task_due_soon", "task_overdue", "recycle_warning"}


def test_a_receiver_failing_twice_gets_the_leads_events_signed_in_order_and_a_replay_sends_them_again(services):
    receiver = Receiver(failures=2)
    started = datetime.now(UTC) - timedelta(seconds=1)
    try:
        subscription = subscribe(services, receiver.url, types=["LeadCaptured", "LeadClaimed", "LeadReleased"])
        lead = capture(services, "赵六")
        claim = httpx.post(f"{services.url('assignment')}/leads/{lead}/claim", headers=auth("rep", "rep-hook"))
        if claim.status_code != 200:  # assignment may not have seen the capture yet
            eventually(
                lambda: (
                    httpx.post(f"{services.url('assignment')}/leads/{lead}/claim", headers=auth("rep", "rep-hook")).status_code
                    == 200
                )
            )
        released = httpx.post(f"{services.url('assignment')}/leads/{lead}/release", headers=auth("rep", "rep-hook"))
        assert released.status_code == 200, released.text

        def of_lead():
            return [(h, b) for h, b in receiver.accepted() if orjson.loads(b)["subject"] == lead]

        accepted = eventually(lambda: len(of_lead()) == 3 and of_lead(), timeout=40)
        verifier = Webhook(subscription["secret"])
        events = [verifier.verify(body, headers) for headers, body in accepted]
        assert [e["type"] for e in events] == ["LeadCaptured", "LeadClaimed", "LeadReleased"]
        with receiver.lock:
            attempts = [h["webhook-id"] for h, b, _ in receiver.hits if orjson.loads(b)["subject"] == lead]
        assert attempts == [e["id"] for e in events for _ in range(3)]  # each retried twice, the next only after it

        log = httpx.get(
            f"{services.url('notify')}/deliveries", params={"subscription": subscription["id"]}, headers=ADMIN
        ).json()["items"]
        assert {(d["status"], d["attempts"]) for d in log if d["subject"] == lead} == {("delivered", 3)}

        replay = httpx.post(
            f"{services.url('notify')}/webhooks/{subscription['id']}/replay", json={"from": started.isoformat()}, headers=ADMIN
        )
        assert replay.status_code == 202, replay.text
        status_url = f"{services.url('notify')}/webhooks/{subscription['id']}/replays/{replay.json()['id']}"
        eventually(lambda: httpx.get(status_url, headers=ADMIN).json()["state"] == "done", timeout=40)
        again = eventually(lambda: len(of_lead()) == 6 and of_lead(), timeout=40)
        assert [h["webhook-id"] for h, _ in again[3:]] == [e["id"] for e in events]  # the same ids: receivers de-dup
    finally:
        receiver.close()
        httpx.delete(f"{services.url('notify')}/webhooks/{subscription['id']}", headers=ADMIN)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/in"}, "url"),
        ({"url": "https://example.com/in", "secret": "whsec_c2hvcnQ="}, "secret"),
        ({"url": "https://example.com/in", "types": ["LeadTeleported"]}, "types"),
        ({"url": "https://example.com/in\u0000"}, "url"),
    ],
)
def test_a_bad_subscription_is_a_422_naming_the_field(services, body, field):
    response = httpx.post(f"{services.url('notify')}/webhooks", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_only_admins_manage_webhooks(services):
    url = f"{services.url('notify')}/webhooks"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=auth("manager", "mgr-1")).status_code == 403
    assert httpx.post(url, json={"url": "https://example.com/in"}, headers=auth("rep", "rep-1")).status_code == 403


def test_preferences_are_the_callers_and_checked(services):
    url = f"{services.url('notify')}/me/preferences"
    rep = auth("rep", f"rep-{uuid.uuid4().hex[:6]}")
    assert httpx.get(url, headers=rep).json()["custom"] is False
    wanted = {"channels": ["email", "feed"], "quiet_hours": {"start": "22:00", "end": "08:00"}, "digest": True, "language": "en"}
    saved = httpx.put(url, json=wanted, headers=rep)
    assert saved.status_code == 200 and saved.json()["custom"] is True
    assert httpx.get(url, headers=rep).json()["quiet_hours"] == {"start": "22:00:00", "end": "08:00:00"}
    bad = httpx.put(url, json={**wanted, "timezone": "Mars/Olympus"}, headers=rep)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "timezone"
    assert httpx.put(url, json={**wanted, "channels": ["pager"]}, headers=rep).status_code == 422


def test_an_overdue_task_is_mailed_to_the_rep_and_the_manager_it_was_escalated_to(services):
    rep = f"rep-{uuid.uuid4().hex[:8]}"
    manager_mail = f"sales-manager-{uuid.uuid4().hex[:6]}@example.com"
    # followup escalates to the default manager, sales-manager, in the e2e session; the directory knows their address.
    publish_directory(
        services,
        RepJoined(rep_id=rep, display_name="李雷", role="rep", email=f"{rep}@example.com"),
        RepJoined(rep_id="sales-manager", display_name="张经理", role="manager", email=manager_mail),
    )
    lead = capture(services, "孙七")
    assign(services, lead, rep)
    logged = eventually(
        lambda: (
            httpx.post(
                f"{services.url('followup')}/leads/{lead}/follow-ups",
                json={"channel": "phone", "summary": "首次通话"},
                headers=auth("rep", rep),
            ).status_code
            == 201
        )
    )
    assert logged
    # The e2e SOP plans the next contact 2 s later; unmet, it becomes overdue and is escalated.
    overdue = eventually(lambda: [m for m in services.mailbox.to(f"{rep}@example.com") if "逾期" in m["Subject"]], timeout=40)
    assert "孙七" in overdue[0]["Subject"]
    escalated = eventually(lambda: [m for m in services.mailbox.to(manager_mail) if "孙七" in m["Subject"]], timeout=40)
    assert "李雷" in escalated[0]["Subject"]
