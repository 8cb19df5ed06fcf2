"""The running services expose the documented metrics on /metrics, and a capture moves the right ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import auth, eventually

ROOT = Path(__file__).resolve().parents[2]
# Services that read LeadCaptured from the topic (intake only publishes).
CONSUMERS_OF_CAPTURES = ("assignment", "analytics")


def documented_metrics() -> set[str]:
    return set(re.findall(r"^\| `(leadflow_[a-z0-9_]+)`", (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8"), re.M))


def scrape(services, service: str) -> dict[str, list]:
    """family name as exposed (counters with their ``_total``) → its samples."""
    response = httpx.get(services.url(service) + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {}
    for family in text_string_to_metric_families(response.text):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        families[name] = family.samples
    return families


def value(families: dict[str, list], sample_name: str, **labels: str) -> float:
    family = sample_name if sample_name in families else re.sub(r"_(bucket|count|sum)$", "", sample_name)
    return sum(s.value for s in families.get(family, []) if s.name == sample_name and labels.items() <= s.labels.items())


def capture_a_lead(services) -> str:
    body = {"name": "指标测试", "phone": "139" + str(uuid.uuid4().int)[:8], "source": "web_form"}
    response = httpx.post(services.url("intake") + "/leads", json=body, headers=auth("integration", "crm-sync"), timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["lead_id"]


def test_every_running_service_exposes_every_documented_metric(services):
    for service in services.ports:
        missing = documented_metrics() - scrape(services, service).keys()
        assert not missing, f"{service} /metrics lacks {sorted(missing)}"


def test_a_capture_is_counted_timed_and_published(services):
    """The API process counts and times the request; the relay process (intake-relay) reports the publication."""
    api_before, relay_before = scrape(services, "intake"), scrape(services, "intake-relay")
    capture_a_lead(services)
    post_leads = {"service": "intake", "method": "POST", "route": "/leads"}

    def published() -> dict[str, list]:
        after = scrape(services, "intake-relay")
        assert value(after, "leadflow_events_published_total", service="intake", type="LeadCaptured") > value(
            relay_before, "leadflow_events_published_total", service="intake", type="LeadCaptured"
        )
        return after

    relay_after = eventually(published)
    api_after = scrape(services, "intake")
    requests_before = value(api_before, "leadflow_http_requests_total", **post_leads, status="201")
    assert value(api_after, "leadflow_http_requests_total", **post_leads, status="201") == requests_before + 1
    assert value(api_after, "leadflow_http_request_duration_seconds_count", **post_leads) >= requests_before + 1
    assert value(relay_after, "leadflow_relay_position", service="intake") > value(
        relay_before, "leadflow_relay_position", service="intake"
    )
    assert eventually(lambda: value(scrape(services, "intake-relay"), "leadflow_relay_backlog_events", service="intake") == 0)


def test_consumers_report_what_they_applied_their_lag_and_freshness(services):
    consumers = [s for s in CONSUMERS_OF_CAPTURES if s in services.ports]
    before = {service: scrape(services, service) for service in consumers}
    capture_a_lead(services)
    for service in consumers:

        def consumed(service: str = service) -> dict[str, list]:
            after = scrape(services, service)
            labels = {"service": service, "type": "LeadCaptured"}
            assert value(after, "leadflow_events_consumed_total", **labels) > value(
                before[service], "leadflow_events_consumed_total", **labels
            )
            return after

        after = eventually(consumed)
        assert {s.labels["partition"] for s in after["leadflow_consumer_lag_records"]}, f"{service} reports no partition lag"
        assert after["leadflow_projection_freshness_seconds"], f"{service} reports no freshness"


def test_a_request_to_an_unknown_path_is_counted_without_inventing_a_route(services):
    httpx.get(services.url("intake") + f"/no-such-path-{uuid.uuid4().hex}", timeout=5)
    routes = {s.labels["route"] for s in scrape(services, "intake")["leadflow_http_requests_total"]}
    assert "unmatched" in routes
    assert not any(route.startswith("/no-such-path") for route in routes)


def test_the_image_healthcheck_passes_against_a_running_service(services):
    env = {"PATH": os.environ["PATH"], "LEADFLOW_SERVICE": "intake", "LEADFLOW_INTAKE_PORT": str(services.ports["intake"])}
    script = ROOT / "deploy" / "docker" / "healthcheck.py"
    assert subprocess.run([sys.executable, str(script)], env=env, timeout=30).returncode == 0
