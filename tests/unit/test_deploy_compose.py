"""deploy/docker-compose.yml: valid for Docker Compose, wired in the right order, and secret-free.

Validated by `docker-compose config` (Debian's docker-compose, which needs no Docker engine for it) or
`docker compose config` where the Compose plugin exists. A missing tool fails the test: `.ci/run` and
`make deploy-check` install it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.test_deploy_settings import settings_variables

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
SERVICES = {"intake": 8001, "assignment": 8002, "followup": 8003, "analytics": 8004, "notify": 8005, "console": 8000}
SECRETS = ("LEADFLOW_JWT_SECRET", "LEADFLOW_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("Neither docker-compose nor the docker compose plugin is installed: run `make deploy-check` (apt docker-compose)")


def filled_env_file(tmp_path: Path, **overrides: str) -> Path:
    """deploy/.env.example with the required secrets filled in, as an operator would."""
    values = {name: f"test-{name.lower()}" for name in SECRETS} | overrides
    lines = []
    for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        name, sep, _ = line.partition("=")
        lines.append(f"{name}={values[name]}" if sep and name in values else line)
    env_file = tmp_path / "compose.env"
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return env_file


def compose_config(compose_file: Path, env_file: Path) -> subprocess.CompletedProcess[str]:
    command = [*compose_command(), "--env-file", str(env_file), "-f", str(compose_file), "config"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=compose_file.parent)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    result = compose_config(COMPOSE, filled_env_file(tmp_path_factory.mktemp("compose")))
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid(rendered):
    others = {"intake-relay", "analytics-streams", "kafka", "postgres", "topic-bootstrap", "prometheus", "grafana"}
    assert set(SERVICES) | others <= set(rendered["services"])


def test_the_validation_catches_an_invalid_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text(encoding="utf-8").replace("condition: service_completed_successfully", "condition: when_ready", 1)
    broken.write_text(text, encoding="utf-8")
    assert compose_config(broken, filled_env_file(tmp_path)).returncode != 0


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_each_secret(tmp_path, secret):
    result = compose_config(COMPOSE, filled_env_file(tmp_path, **{secret: ""}))
    assert result.returncode != 0
    assert secret in result.stderr


def test_no_secret_is_written_in_the_file():
    text = COMPOSE.read_text(encoding="utf-8")
    assert "leadflow-local-dev-secret" not in text
    for secret in SECRETS:
        assert f"${{{secret}:?" in text, f"{secret} must come from deploy/.env, required"
    assert "POSTGRES_PASSWORD: ${LEADFLOW_DB_PASSWORD:?" in text


def test_kafka_is_the_official_kraft_image_without_topic_auto_creation(rendered):
    kafka = rendered["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.1.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["environment"]["KAFKA_LOG_DIRS"] in {v.split(":")[1] for v in kafka["volumes"]} or any(
        v.get("target") == kafka["environment"]["KAFKA_LOG_DIRS"] for v in kafka["volumes"] if isinstance(v, dict)
    )
    assert rendered["services"]["postgres"]["image"] == "postgres:15"


def test_topic_bootstrap_runs_once_after_kafka_is_healthy(rendered):
    bootstrap = rendered["services"]["topic-bootstrap"]
    assert bootstrap["command"] == ["bootstrap-topic"]
    assert bootstrap["environment"]["LEADFLOW_TOPIC_PARTITIONS"] in ("6", 6)
    assert bootstrap["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize(("service", "port"), sorted(SERVICES.items()))
def test_each_service_waits_for_its_dependencies_and_is_health_checked(rendered, service, port):
    spec = rendered["services"][service]
    assert spec["command"] == [service]
    assert spec["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
        "topic-bootstrap": {"condition": "service_completed_successfully"},
    }
    assert spec["healthcheck"]["test"] == ["CMD", "python", "/app/deploy/docker/healthcheck.py"]
    env = spec["environment"]
    assert env["LEADFLOW_SERVICE"] == service
    assert env[f"LEADFLOW_{service.upper()}_PORT"] in (str(port), port)
    assert env["LEADFLOW_HOST"] == "0.0.0.0"
    assert env["LEADFLOW_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["LEADFLOW_DATABASE_URL"].startswith("postgresql://leadflow:test-leadflow_db_password@postgres:5432/")
    assert env["LEADFLOW_JWT_SECRET"] == "test-leadflow_jwt_secret"


def test_the_streams_worker_runs_after_the_topic_exists_and_is_health_checked(rendered):
    spec = rendered["services"]["analytics-streams"]
    assert spec["command"] == ["analytics-streams"]
    assert spec["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "topic-bootstrap": {"condition": "service_completed_successfully"},
    }
    assert spec["healthcheck"]["test"] == ["CMD", "python", "/app/deploy/docker/healthcheck.py"]
    env = spec["environment"]
    assert env["LEADFLOW_SERVICE"] == "analytics-streams"
    assert env["LEADFLOW_ANALYTICS_STREAMS_PORT"] in ("8014", 8014)
    assert (env["LEADFLOW_HOST"], env["LEADFLOW_KAFKA_BOOTSTRAP"]) == ("0.0.0.0", "kafka:9092")


def test_intakes_relay_runs_as_a_process_of_its_own_and_the_api_leaves_publishing_to_it(rendered):
    spec = rendered["services"]["intake-relay"]
    assert spec["command"] == ["intake-relay"]
    # It reads intake's event store and publishes to the topic: the same dependencies as intake.
    assert spec["depends_on"] == rendered["services"]["intake"]["depends_on"]
    assert spec["healthcheck"]["test"] == ["CMD", "python", "/app/deploy/docker/healthcheck.py"]
    assert spec["restart"] == rendered["services"]["intake"]["restart"] == "unless-stopped"
    env = spec["environment"]
    assert env["LEADFLOW_SERVICE"] == "intake-relay"
    assert env["LEADFLOW_INTAKE_RELAY_PORT"] in ("8011", 8011)
    assert (env["LEADFLOW_HOST"], env["LEADFLOW_KAFKA_BOOTSTRAP"]) == ("0.0.0.0", "kafka:9092")
    assert env["LEADFLOW_DATABASE_URL"] == rendered["services"]["intake"]["environment"]["LEADFLOW_DATABASE_URL"]
    assert env.get("LEADFLOW_INTAKE_EMBEDDED_RELAY", "true") != "false"
    # Without this, intake and its relay would both publish every event.
    assert rendered["services"]["intake"]["environment"]["LEADFLOW_INTAKE_EMBEDDED_RELAY"] == "false"
    assert rendered["services"]["prometheus"]["depends_on"]["intake-relay"]["condition"] == "service_healthy"


def test_services_read_every_variable_compose_sets(rendered):
    known = settings_variables()
    for name in (*SERVICES, "intake-relay", "analytics-streams", "topic-bootstrap"):
        unknown = {var for var in rendered["services"][name]["environment"] if var not in known}
        assert not unknown, f"{name}: no LeadFlow setting reads {sorted(unknown)}"


def test_the_console_reaches_the_other_services_by_their_compose_names(rendered):
    env = rendered["services"]["console"]["environment"]
    for name in ("intake", "assignment", "followup", "analytics"):  # the services the console calls
        assert env[f"LEADFLOW_{name.upper()}_URL"] == f"http://{name}:{SERVICES[name]}"


def test_prometheus_and_grafana_get_their_configuration(rendered):
    prometheus = rendered["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    mounts = str(prometheus["volumes"]) + str(rendered["services"]["grafana"]["volumes"])
    for folder in ("deploy/prometheus", "deploy/grafana/provisioning", "deploy/grafana/dashboards"):
        assert str(ROOT / folder) in mounts, f"{folder} is not mounted"


def test_notify_refuses_private_networks_and_mails_nobody_unless_configured(rendered):
    env = rendered["services"]["notify"]["environment"]
    assert env["LEADFLOW_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] == "false"
    assert env["LEADFLOW_SMTP_URL"] == ""  # e-mail is off until deploy/.env names a server
    assert rendered["services"]["prometheus"]["depends_on"]["notify"]["condition"] == "service_healthy"
