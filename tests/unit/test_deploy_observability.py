"""Prometheus and Grafana configuration: valid for promtool, and every query names a metric LeadFlow exports.

promtool (Debian's `prometheus` package) checks the scrape config, the alert rules and, through a
generated rules file, the PromQL of every dashboard panel. A missing promtool fails the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from shared import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "leadflow.json"
SERVICES = {"intake": 8001, "assignment": 8002, "followup": 8003, "analytics": 8004, "notify": 8005, "console": 8000}
# Processes besides the services that export LeadFlow metrics: intake's relay publishes intake's events, so
# leadflow_events_published_total{service="intake"} (the capture rate) and its relay backlog come from it.
SCRAPED_PROCESSES = {**SERVICES, "intake-relay": 8011}
# Grafana's variables, replaced by what they stand for when Grafana runs the query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "6h", "$__interval": "15s", "$service": ".*"}
LEADFLOW_NAME = re.compile(r"\bleadflow_[a-z0-9_]+\b")


def exported_series() -> dict[str, str]:
    """Every series name shared/metrics.py exports (``x_total``, ``x_bucket`` ...) → its metric's family name."""
    series = {}
    for metric in vars(metrics).values():
        if isinstance(metric, Counter):
            series[f"{metric._name}_total"] = metric._name
        elif isinstance(metric, Gauge):
            series[metric._name] = metric._name
        elif isinstance(metric, Histogram):
            series |= {f"{metric._name}_{suffix}": metric._name for suffix in ("bucket", "sum", "count")}
    return series


def unknown_metrics(expr: str) -> set[str]:
    return set(LEADFLOW_NAME.findall(expr)) - exported_series().keys()


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: apt-get install prometheus (make deploy-check)")
    return found


def check_rules(tmp_path: Path, expressions: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """promtool parses each expression as a recording rule (it has no other offline PromQL check)."""
    recorded = [{"record": f"panel:{name}", "expr": expr} for name, expr in expressions.items()]
    rules = {"groups": [{"name": "dashboard", "rules": recorded}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def dashboard_queries() -> dict[str, str]:
    """title/refId → PromQL of every panel target, with Grafana's variables substituted."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries[f"{panel['id']}_{target['refId']}"] = expr
    return queries


# --- Prometheus ---


def test_prometheus_config_and_rules_are_valid():
    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = len(list((PROMETHEUS / "rules").glob("*.yml")))
    assert f"SUCCESS: {rule_files} rule files found" in result.stdout, "the alert rules were not found next to the config"


def test_promtool_catches_an_invalid_config(tmp_path):
    broken = tmp_path / "prometheus.yml"
    broken.write_text((PROMETHEUS / "prometheus.yml").read_text().replace("scrape_interval: 15s", "scrape_interval: soon", 1))
    assert subprocess.run([promtool(), "check", "config", str(broken)], capture_output=True, timeout=60).returncode != 0


def test_every_service_metrics_endpoint_is_scraped():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "leadflow"]
    assert job["metrics_path"] == "/metrics"
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    assert targets == {f"{process}:{port}" for process, port in SCRAPED_PROCESSES.items()}
    components = {group["labels"]["component"]: group["targets"] for group in job["static_configs"]}
    assert components["intake-relay"] == ["intake-relay:8011"]


def test_alert_rules_name_only_exported_metrics():
    for path in (PROMETHEUS / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                assert not unknown_metrics(rule["expr"]), f"{rule['alert']}: {unknown_metrics(rule['expr'])}"


# --- Grafana ---


def test_dashboard_queries_parse_as_promql(tmp_path):
    result = check_rules(tmp_path, dashboard_queries())
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promql_check_catches_a_broken_query(tmp_path):
    assert check_rules(tmp_path, {"broken": "sum by (service (rate(leadflow_http_requests_total[5m]))"}).returncode != 0


def test_every_dashboard_query_names_an_exported_metric():
    for name, expr in dashboard_queries().items():
        assert LEADFLOW_NAME.search(expr), f"panel {name} queries no LeadFlow metric: {expr}"
        assert not unknown_metrics(expr), f"panel {name} names metrics LeadFlow does not export: {unknown_metrics(expr)}"


def test_the_metric_check_catches_an_unknown_metric():
    assert unknown_metrics("rate(leadflow_leads_captured_total[5m])") == {"leadflow_leads_captured_total"}
    assert unknown_metrics("histogram_quantile(0.99, rate(leadflow_http_request_duration_seconds_bucket[5m]))") == set()


def test_dashboard_has_the_operator_panels():
    titles = {panel["title"] for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]}
    for wanted in (
        "Capture rate",
        "Claims and releases",
        "Releases by reason",
        "Funnel (selected time range)",
        "Follow-ups per rep (selected time range)",
        "Relay backlog",
        "Consumer lag per partition",
        "API latency p99",
        "Notifications sent",
        "Notification latency p99",
        "Notification queue depth",
        "Notification failures",
    ):
        assert wanted in titles


def test_dashboard_uses_the_provisioned_datasource_and_folder():
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "leadflow.yml").read_text())["providers"][0]
    compose = (ROOT / "deploy" / "docker-compose.yml").read_text(encoding="utf-8")
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in compose
    assert datasource["url"] == "http://prometheus:9090"


def test_panel_ids_are_unique():
    ids = [panel["id"] for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]]
    assert len(ids) == len(set(ids))


# --- docs/metrics.md ---


def documented_metrics() -> set[str]:
    return set(re.findall(r"^\| `(leadflow_[a-z0-9_]+)`", (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8"), re.M))


def test_every_metric_is_documented_and_every_documented_metric_exists():
    exported = {f"{name}_total" if series.endswith("_total") else name for series, name in exported_series().items()}
    assert documented_metrics() == exported


def test_alert_rules_pass_their_promtool_unit_tests():
    tests = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
    assert tests, "no promtool rule tests found"
    for path in tests:
        result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{path.name}:\n{result.stdout}{result.stderr}"


def test_every_worker_alert_has_a_runbook_in_the_operations_guide():
    guide = (PROMETHEUS.parents[1] / "docs" / "operations.md").read_text(encoding="utf-8")
    headings = [line.lstrip("#").strip().lower() for line in guide.splitlines() if line.startswith("#")]
    anchors = {"#" + re.sub(r"[^a-z0-9 -]", "", heading).replace(" ", "-") for heading in headings}
    for path in (PROMETHEUS / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                url = rule.get("annotations", {}).get("runbook_url")
                if group["name"] == "leadflow" and not url:
                    continue  # the first alerts predate runbooks; every newer group links one
                assert url, f"{rule['alert']} has no runbook_url"
                assert url.startswith("docs/operations.md#") and url.removeprefix("docs/operations.md") in anchors, url
