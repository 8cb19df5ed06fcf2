"""The faust worker against the real broker: activity per window and hot leads, read from its pages."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.analytics.synthetic import History, publish
from tests.conftest import unique

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def worker(infra, fresh_topic, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "LEADFLOW_KAFKA_BOOTSTRAP": infra["kafka"],
        "LEADFLOW_TOPIC": fresh_topic,
        "LEADFLOW_CONSUMER_GROUP_PREFIX": unique("s"),
        "LEADFLOW_HOT_LEAD_WINDOW": "2s",
        "LEADFLOW_ANALYTICS_STREAMS_PORT": str(port),
    }
    log = open(tmp_path / "streams.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.analytics.streams", "worker", "-l", "warn"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        yield f"http://127.0.0.1:{port}", fresh_topic, proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        print((tmp_path / "streams.log").read_text(errors="replace")[-3000:])


def page(url: str) -> dict | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


async def test_the_worker_counts_activity_and_finds_hot_leads_on_the_broker(infra, worker):
    url, topic, proc = worker
    deadline = time.monotonic() + 120
    # The worker starts at the end of the topic: wait until it counts a probe, then publish the story.
    while True:
        assert proc.poll() is None, "the streams worker exited"
        assert time.monotonic() < deadline, "the streams worker never counted anything"
        await publish(infra["kafka"], topic, iter(History().capture(datetime.now(UTC)).events))
        activity = page(f"{url}/activity/")
        if activity and activity["activity"].get("LeadCaptured"):
            break
        time.sleep(1)
    probes = sum(activity["activity"]["LeadCaptured"].values())

    now = datetime.now(UTC)
    waiting = History().capture(now - timedelta(minutes=1), source="trade_show")
    claimed = History().capture(now - timedelta(minutes=1)).claim(now, "rep-1")
    await publish(infra["kafka"], topic, iter(waiting.events + claimed.events))
    while True:
        assert time.monotonic() < deadline, f"no answer in time: {page(f'{url}/activity/')} {page(f'{url}/hot-leads/')}"
        activity = page(f"{url}/activity/")["activity"]
        hot = {lead["lead_id"] for lead in page(f"{url}/hot-leads/")["leads"]}
        if sum(activity.get("LeadClaimed", {}).values()) == 1 and waiting.lead_id in hot:
            break
        time.sleep(0.5)
    assert sum(activity["LeadCaptured"].values()) >= probes + 2
    assert claimed.lead_id not in hot
