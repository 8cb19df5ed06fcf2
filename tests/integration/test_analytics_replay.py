"""Replays on the real broker and database: killed mid-batch they resume exactly; they equal the live
projection; promotion switches the serving tables while the API keeps answering."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg_pool import ConnectionPool

from services.analytics.catalog import Catalog, Instance
from services.analytics.main import build_app
from services.analytics.projections import REGISTRY
from services.analytics.projections.base import Projection
from services.analytics.replay import replay
from services.analytics.synthetic import History, publish, synthetic_events
from services.analytics.tracking import InstanceWriter
from shared.consumer import Delivered, PartitionBatch
from tests.integration.test_analytics_read_models import analytics_schema, headers, settings, wait_for  # noqa: F401

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ALL = list(REGISTRY)


def dump(database_url: str, instance: str) -> dict[str, list[str]]:
    """Every row of every projection table of ``instance``, as sorted JSON text."""
    out = {}
    with psycopg.connect(database_url) as conn:
        for table in (t for p in REGISTRY.values() for t in p.tables):
            query = sql.SQL("SELECT row_to_json(t)::text FROM {} t ORDER BY 1").format(sql.Identifier(instance, table))
            out[table] = [row[0] for row in conn.execute(query)]
    return out


def applied_offsets(database_url: str, instance: str) -> int:
    with psycopg.connect(database_url) as conn:
        query = sql.SQL("SELECT coalesce(sum(next_offset), 0) FROM {}").format(sql.Identifier(instance, "positions"))
        return conn.execute(query).fetchone()[0]


@pytest.fixture
def catalog(settings):  # noqa: F811
    with ConnectionPool(settings.database_url, min_size=1, max_size=2) as pool:
        catalog = Catalog(pool, settings.analytics_schema)
        catalog.ensure_serving()
        yield catalog


def replay_process(settings, instance: str, batch: int, workers: int) -> subprocess.Popen:  # noqa: F811
    env = {
        **os.environ,
        "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADFLOW_DATABASE_URL": settings.database_url,
        "LEADFLOW_TOPIC": settings.topic,
        "LEADFLOW_ANALYTICS_SCHEMA": settings.analytics_schema,
        "LEADFLOW_CONSUMER_GROUP_PREFIX": settings.consumer_group_prefix,
    }
    command = [sys.executable, "-m", "services.analytics.replay", "--instance", instance, "--no-promote", "--no-follow"]
    options = ["--batch-size", str(batch), "--workers", str(workers)]
    return subprocess.Popen([*command, *options], cwd=ROOT, env=env, stderr=subprocess.PIPE)


def helpers_alive(instance: str) -> list[str]:
    """Command lines of replay helper processes still working on ``instance``."""
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--helper" in args and instance.encode() in args:
            alive.append(b" ".join(args).decode())
    return alive


async def test_a_replay_killed_mid_batch_resumes_to_the_same_result_as_a_clean_replay(settings, catalog):  # noqa: F811
    total = await publish(settings.kafka_bootstrap, settings.topic, synthetic_events(400, seed=11))
    killed = catalog.create_instance(ALL)
    proc = replay_process(settings, killed.name, batch=30, workers=2)
    try:
        wait_for(lambda: applied_offsets(settings.database_url, killed.name) > total // 4, timeout=60)
        assert len(helpers_alive(killed.name)) == 1  # the second worker
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    at_kill = applied_offsets(settings.database_url, killed.name)
    assert 0 < at_kill < total, "the replay was not killed mid-way; the test proves nothing"

    # Its helper, orphaned without a signal, stops by itself.
    wait_for(lambda: not helpers_alive(killed.name), timeout=30)

    resumed = replay_process(settings, killed.name, batch=500, workers=3)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()
    assert applied_offsets(settings.database_url, killed.name) == total
    assert not helpers_alive(killed.name)

    clean = catalog.create_instance(ALL)
    await replay(settings, catalog, clean, promote=False, follow=False, batch=5000)
    assert dump(settings.database_url, killed.name) == dump(settings.database_url, clean.name)


def exploding(after: int) -> Projection:
    calls = []

    def apply(cur, schema, facts) -> None:
        calls.append(1)
        if len(calls) > after:
            raise RuntimeError("killed in the middle of the batch")

    return Projection(name="exploding", description="", tables=(), ddl=(), apply=apply)


def test_a_failure_inside_a_batch_leaves_nothing_of_it(settings, catalog):  # noqa: F811
    events = list(synthetic_events(30, seed=5))
    batch = [Delivered(0, offset, e, e.payload()) for offset, e in enumerate(events)]
    target = catalog.create_instance(ALL)
    first, second = batch[: len(batch) // 2], batch[len(batch) // 2 :]
    # The projections run in order: the 360, funnel ... rows of the second batch are written, then this fails.
    failing = InstanceWriter(
        catalog.pool, Instance(target.name, (*target.projections, exploding(after=1))), settings.topic, catalog.schema
    )
    assert failing.handle_batch([PartitionBatch(0, first, first[-1].offset + 1)]) == len(first)
    before = dump(settings.database_url, target.name)
    with pytest.raises(RuntimeError):
        failing.handle_batch([PartitionBatch(0, second, second[-1].offset + 1)])
    assert dump(settings.database_url, target.name) == before
    assert applied_offsets(settings.database_url, target.name) == len(first)

    writer = InstanceWriter(catalog.pool, target, settings.topic, catalog.schema)
    assert writer.handle_batch([PartitionBatch(0, batch, len(batch))]) == len(second)  # the first half is recognised as applied
    assert writer.handle_batch([PartitionBatch(0, batch, len(batch))]) == 0
    clean = catalog.create_instance(ALL)
    InstanceWriter(catalog.pool, clean, settings.topic, catalog.schema).handle_batch([PartitionBatch(0, batch, len(batch))])
    assert dump(settings.database_url, target.name) == dump(settings.database_url, clean.name)


def test_a_poll_spanning_partitions_applies_only_what_is_past_each_stored_position(settings, catalog):  # noqa: F811
    events = list(synthetic_events(20, seed=7))
    half = len(events) // 2
    on_0 = [Delivered(0, offset, e, e.payload()) for offset, e in enumerate(events[:half])]
    on_1 = [Delivered(1, offset, e, e.payload()) for offset, e in enumerate(events[half:])]
    target = catalog.create_instance(ALL)
    writer = InstanceWriter(catalog.pool, target, settings.topic, catalog.schema)
    assert writer.handle_batch([PartitionBatch(0, on_0, len(on_0))]) == len(on_0)
    # Partition 0's batch was applied (by this or another consumer of the instance): only partition 1's applies.
    assert writer.handle_batch([PartitionBatch(0, on_0, len(on_0)), PartitionBatch(1, on_1, len(on_1))]) == len(on_1)
    assert writer.load_positions([0, 1]) == {0: len(on_0), 1: len(on_1)}
    clean = catalog.create_instance(ALL)
    both = [PartitionBatch(0, on_0, len(on_0)), PartitionBatch(1, on_1, len(on_1))]
    assert InstanceWriter(catalog.pool, clean, settings.topic, catalog.schema).handle_batch(both) == len(events)
    assert dump(settings.database_url, target.name) == dump(settings.database_url, clean.name)


async def test_a_replay_equals_the_live_projection_and_takes_over_serving_without_downtime(settings, catalog):  # noqa: F811
    (live,) = catalog.serving_instances()
    events = list(synthetic_events(300, seed=23))
    with TestClient(build_app(settings)) as client:
        for start in range(0, len(events), 1000):  # arriving while the service follows the topic
            await publish(settings.kafka_bootstrap, settings.topic, iter(events[start : start + 1000]))
            time.sleep(0.3)
        wait_for(lambda: applied_offsets(settings.database_url, live.name) == len(events) or None, timeout=60)

        statuses: list[int] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                statuses.append(
                    client.get("/funnel", params={"from": "2026-10-01", "to": "2026-12-31"}, headers=headers()).status_code
                )

        asker = threading.Thread(target=keep_asking)
        asker.start()
        rebuilt = catalog.create_instance(ALL)
        try:
            await replay(settings, catalog, rebuilt, promote=True, follow=False, batch=5000)
        finally:
            stop.set()
            asker.join()
        assert statuses and set(statuses) == {200}
        assert dump(settings.database_url, rebuilt.name) == dump(settings.database_url, live.name)
        assert [i.name for i in catalog.serving_instances()] == [rebuilt.name]

        # The service now follows the promoted instance (the replay has exited) and serves it.
        marker = History().capture(events[-1].time, source="after-promotion")
        await publish(settings.kafka_bootstrap, settings.topic, iter(marker.events))

        def marker_served():
            response = client.get(f"/customers/{marker.lead_id}", headers=headers())
            assert response.status_code == 200, response.text
            return response.json()

        assert wait_for(marker_served)["source"] == "after-promotion"
        assert applied_offsets(settings.database_url, rebuilt.name) == len(events) + 1
