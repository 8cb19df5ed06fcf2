"""The topic bootstrap on the real broker: it creates the topic and its dead-letter topic, both retained
forever, and a second run verifies them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.conftest import unique

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "topic_bootstrap.py"


def load_bootstrap():
    spec = importlib.util.spec_from_file_location("topic_bootstrap", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the settings' annotations through it
    spec.loader.exec_module(module)
    return module


async def test_the_bootstrap_creates_the_topic_and_its_dead_letter_topic_retained_forever(infra):
    module = load_bootstrap()
    topic = unique("leadflow.boot")
    settings = module.BootstrapSettings(kafka_bootstrap=infra["kafka"], topic=topic, topic_partitions=3)
    assert await module.bootstrap(settings) == 0
    assert await module.bootstrap(settings) == 0, "idempotent"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra["kafka"])
    await admin.start()
    try:
        assert await module.describe(admin, topic) == (3, "-1")
        assert await module.describe(admin, f"{topic}.dlq") == (1, "-1")
    finally:
        await admin.close()
