"""A projector following its service's own event store parks a stored event it cannot apply (real PostgreSQL
and Kafka): a copy on the dead-letter topic, a row in ``dead_letters`` with its notification id, counted,
the events after it projected; re-driving it after a fix rebuilds its lead's row, once."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
from prometheus_client import REGISTRY

import services.assignment.projections as projections
import services.followup.task_board as task_board
from services.assignment.domain.ownership import Ownership
from services.assignment.projections import Projector
from services.followup.app import FollowupApplication
from services.followup.config import FollowupSettings
from services.followup.domain.lead_file import LeadFile
from services.followup.projections import TaskAdded
from services.followup.task_board import TaskBoard, TaskBoardProjector, TaskQuery
from shared.eventstore import eventsourcing_env
from shared.projector import StoredEventParking
from tests.integration.test_assignment_flow import RULES, app, view  # noqa: F401 (fixtures)
from tests.integration.test_dead_letters import read_dlq, run_cli
from tests.unit.test_followup_cadence import RULES as FOLLOWUP_RULES

pytestmark = pytest.mark.integration
START = datetime(2026, 12, 1, 9, tzinfo=UTC)
TRACE = {"correlation_id": "it", "causation_id": None}


def lead(rep_id: str | None) -> Ownership:
    ownership = Ownership(
        lead_id=str(uuid.uuid4()), region="上海", industry="it", grade="B", source="web_form", captured_at=START
    )
    if rep_id is not None:
        ownership.claim(rep_id=rep_id, how="assign", now=START, rules=RULES, assigned_by="mgr-1")
    return ownership


async def project_until(projector: Projector, check=None, timeout: float = 30) -> None:
    """Run the projector (as its worker does) until it reached the end of the log and ``check()`` holds."""
    task = asyncio.create_task(projector.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if (projector.position or 0) >= projector.app.recorder.max_notification_id() and (
                check is None or await asyncio.to_thread(check)
            ):
                return
            if task.done():
                await task
            await asyncio.sleep(0.1)
        raise AssertionError("the projector did not get there in time")
    finally:
        projector.stop()
        await asyncio.wait_for(task, 20)


def rows(readmodel, *lead_ids: str) -> dict[str, dict]:
    with readmodel.pool.connection() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        found = cur.execute(
            f"SELECT * FROM {readmodel.table.as_string(conn)} WHERE lead_id = ANY(%s)", (list(lead_ids),)
        ).fetchall()
    return {row["lead_id"]: row for row in found}


def letters(readmodel) -> list[dict]:
    with readmodel.pool.connection() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(f'SELECT * FROM "{readmodel.dead_letters.schema}".dead_letters ORDER BY id').fetchall()


async def test_a_stored_event_the_view_cannot_take_is_parked_and_re_driven_after_a_fix(
    app,  # noqa: F811
    view,  # noqa: F811
    infra,
    fresh_topic,
    fresh_schema,
    monkeypatch,
):
    before, poisoned, after = lead("rep-1"), lead("eco\x00rep"), lead("rep-2")  # a NUL no text column can hold
    app.save(before)
    app.save(poisoned)
    app.save(after)
    service = f"svc-{uuid.uuid4().hex[:6]}"
    parking = StoredEventParking(app, service=service, worker="projector", bootstrap=infra["kafka"], topic=fresh_topic)

    await project_until(Projector(app, view, poll_interval=0.05, parking=parking))

    got = rows(view, before.lead_id, poisoned.lead_id, after.lead_id)
    assert (got[before.lead_id]["owner"], got[after.lead_id]["owner"]) == ("rep-1", "rep-2"), "the events after it are projected"
    assert got[poisoned.lead_id]["owner"] is None, "its Registered was projected, its Claimed parked"
    (letter,) = letters(view)
    claimed_at = next(n.id for n in app.recorder.aggregate_notifications(poisoned.lead_id, 10**9) if n.topic.endswith("Claimed"))
    assert (letter["reason"], letter["worker"], letter["offset"], letter["lead_id"]) == (
        "projection-error",
        "projector",
        claimed_at,
        poisoned.lead_id,
    )
    assert letter["topic"] == f"store:{fresh_schema}.{app.recorder.events_table_name}"
    labels = {"service": service, "worker": "projector", "reason": "projection-error"}
    assert REGISTRY.get_sample_value("leadflow_events_dead_lettered_total", labels) == 1
    (copy,) = await read_dlq(infra["kafka"], fresh_topic, expect=1)
    headers = dict(copy.headers)
    assert headers["dlq-offset"] == str(claimed_at).encode() and headers["dlq-worker"] == b"projector"
    assert headers["es-notification-id"] == str(claimed_at).encode()
    assert copy.value == bytes(letter["value"])

    # The fix: the view shows a NUL as U+FFFD (what a release of the projector would do), then a re-drive.
    original = projections.row_change

    def fixed(event):
        change = original(event)
        if change is not None and isinstance(change.values.get("owner"), str):
            change.values["owner"] = change.values["owner"].replace("\x00", "\ufffd")
        return change

    monkeypatch.setattr(projections, "row_change", fixed)
    code, out = await run_cli("--service", "assignment", "--schema", fresh_schema, "retry", str(letter["id"]), "--wait", "0")
    assert code == 2, out  # nothing runs yet: it waits, requested
    projector = Projector(app, view, poll_interval=0.05, parking=parking)
    await project_until(projector, check=lambda: letters(view)[0]["status"] == "resolved")
    row = rows(view, poisoned.lead_id)[poisoned.lead_id]
    assert (row["owner"], row["stage"], row["how"]) == ("eco\ufffdrep", "assigned", "assign")
    assert row["protected_until"] == poisoned.protected_until

    code, out = await run_cli("--service", "assignment", "--schema", fresh_schema, "retry", str(letter["id"]))
    assert code == 0 and "resolved, nothing to re-drive" in out


async def test_the_task_board_parks_a_stored_event_it_cannot_take_and_rebuilds_the_lead_on_a_re_drive(
    infra, fresh_topic, fresh_schema, monkeypatch
):
    settings = FollowupSettings(database_url=infra["database_url"], kafka_bootstrap=infra["kafka"], topic=fresh_topic)
    followup = FollowupApplication(eventsourcing_env(settings, fresh_schema), FOLLOWUP_RULES)
    board = TaskBoard(settings.database_url, fresh_schema, pool_size=2)
    board.ensure_tables()
    try:
        files = {}
        for rep in ("rep-1", "eco\x00rep", "rep-2"):
            file = LeadFile(lead_id=str(uuid.uuid4()), grade="A", at=START, trace=TRACE)
            file.claim(rep, START, FOLLOWUP_RULES, TRACE)
            followup.save(file)
            files[rep] = file.lead_id
        parking = StoredEventParking(
            followup, service="followup-t", worker="task-board", bootstrap=infra["kafka"], topic=fresh_topic
        )

        await project_until(TaskBoardProjector(followup, board, poll_interval=0.05, parking=parking))

        owners = {task["rep_id"] for task in board.tasks(TaskQuery())}
        assert owners == {"rep-1", "rep-2"}, "the tasks of the other leads are on the board"
        assert board.requested("task-board") == []
        with board.pool.connection() as conn:
            (parked,) = conn.execute(f'SELECT id, reason, lead_id FROM "{fresh_schema}".dead_letters').fetchall()
        assert (parked["reason"], parked["lead_id"]) == ("projection-error", files["eco\x00rep"])

        original = task_board.changes_for

        def fixed(event):
            return [
                replace(c, rep_id=c.rep_id.replace("\x00", "\ufffd")) if isinstance(c, TaskAdded) else c for c in original(event)
            ]

        monkeypatch.setattr(task_board, "changes_for", fixed)
        code, out = await run_cli("--service", "followup", "--schema", fresh_schema, "retry", "--all", "--wait", "0")
        assert code == 2, out
        projector = TaskBoardProjector(followup, board, poll_interval=0.05, parking=parking)
        await project_until(projector, check=lambda: len(board.tasks(TaskQuery())) == 3)
        (task,) = board.tasks(TaskQuery(lead_id=files["eco\x00rep"]))
        assert (task["rep_id"], task["kind"], task["status"]) == ("eco\ufffdrep", "first_contact", "open")
        with board.pool.connection() as conn:
            reminder = conn.execute(
                f'SELECT remind_at FROM "{fresh_schema}".recycle_reminders WHERE lead_id = %s', (files["eco\x00rep"],)
            ).fetchone()
        assert reminder is not None, "the lead's reminder is rebuilt with its tasks"
    finally:
        board.close()
        followup.close()
