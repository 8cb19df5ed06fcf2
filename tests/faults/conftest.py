"""The fault suite's own broker and database (it kills them), and every process of LeadFlow on them.

Each test module gets a fresh database, topic and set of processes, so that what one kind of fault
breaks (a consumer stopped for good, say) shows up in its own tests and not in every later one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import create_topic
from tests.e2e.conftest import PROCESSES, ROOT, Services, fresh_database, running_processes
from tests.faults.scenario import REPORTED
from tests.faults.stack import PrivateStack

STACK_DIR = ROOT / ".stack" / "faults"
# The services run with the settings a deployment has by default: the promises are made for those.
DEFAULT_RULES: dict[str, str] = {}


@pytest.fixture(scope="session")
def stack() -> Iterator[PrivateStack]:
    stack = PrivateStack(STACK_DIR)
    # Whatever an earlier run left (its data and logs are kept until now, to look at); so one run at a
    # time in a work tree, though any number beside the usual stack (the ports are free ones).
    stack.clean()
    stack.up()
    yield stack
    stack.down()


@pytest.fixture(scope="module")
def topic(stack: PrivateStack) -> str:
    name = f"leadflow.faults.{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(stack.kafka, name, partitions=6))
    return name


@pytest.fixture(scope="module")
def system(stack: PrivateStack, topic: str, request: pytest.FixtureRequest) -> Iterator[Services]:
    logs = STACK_DIR / "logs" / request.module.__name__.rsplit(".", 1)[-1]
    logs.mkdir(parents=True, exist_ok=True)
    with running_processes(
        PROCESSES,
        kafka=stack.kafka,
        database_url=fresh_database(stack.database_url),
        topic=topic,
        logs=logs,
        rules=DEFAULT_RULES,
    ) as services:
        yield services


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORTED:
        terminalreporter.section("recovery after each fault")
        for recovery in REPORTED:
            terminalreporter.write_line(recovery.line())
        terminalreporter.write_line(f"service logs: {STACK_DIR / 'logs'}")
