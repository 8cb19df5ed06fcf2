"""The container image, read statically (no Docker engine here): Dockerfile, entrypoint, healthcheck, .dockerignore."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
SERVICES = {"intake": 8001, "assignment": 8002, "followup": 8003, "analytics": 8004, "notify": 8005, "console": 8000}
# The services plus intake's outbox relay and analytics' faust streams worker.
PROCESSES = {**SERVICES, "intake-relay": 8011, "analytics-streams": 8014}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            found.append((keyword.upper(), args.strip()))
    return found


def args_of(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def test_slim_python_311_base_image():
    assert args_of("FROM") == ["python:3.11-slim"]


def test_dependencies_come_from_the_development_lock():
    assert any("-r requirements.txt" in run and "-c requirements.lock" in run for run in args_of("RUN"))
    assert "requirements.txt requirements.lock ./" in args_of("COPY")


def test_runs_as_a_numeric_non_root_user():
    (user,) = args_of("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "Kubernetes' runAsNonRoot can only verify a numeric, non-zero USER"


def test_exposes_every_service_port_and_has_a_healthcheck():
    exposed = {int(port) for args in args_of("EXPOSE") for port in args.split()}
    assert exposed == set(PROCESSES.values())
    (healthcheck,) = args_of("HEALTHCHECK")
    assert "/app/deploy/docker/healthcheck.py" in healthcheck


def test_every_copied_path_exists():
    for args in args_of("COPY"):
        *sources, _ = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


def test_dockerignore_keeps_the_context_small_and_free_of_secrets():
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", ".stack", ".env", "deploy/.env", "tests"} <= ignored
    assert not ignored & {"shared", "services", "requirements.txt", "requirements.lock", "deploy/docker"}


def run_entrypoint(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"]}
    return subprocess.run(["sh", str(DOCKER / "entrypoint.sh"), *args], env=env, capture_output=True, text=True, timeout=30)


def test_entrypoint_refuses_an_unknown_process_with_usage():
    result = run_entrypoint("billing")
    assert result.returncode == 64
    usage = (
        "usage: entrypoint.sh intake|intake-relay|assignment|followup|analytics|notify|analytics-streams|console|bootstrap-topic"
    )
    assert usage in result.stderr


def test_entrypoint_without_a_service_refuses_too():
    assert run_entrypoint().returncode == 64


def test_entrypoint_starts_exactly_the_contract_services():
    script = (DOCKER / "entrypoint.sh").read_text(encoding="utf-8")
    (services,) = re.findall(r"^\s*([a-z |]+)\)\n\s*export LEADFLOW_SERVICE", script, flags=re.M)
    assert {s.strip() for s in services.split("|")} == set(SERVICES)
    for service in SERVICES:
        assert (ROOT / "services" / service / "__main__.py").exists(), f"python -m services.{service} has no __main__"


def test_entrypoint_starts_the_streams_worker_as_analytics_streams():
    script = (DOCKER / "entrypoint.sh").read_text(encoding="utf-8")
    (case,) = re.findall(r"^\s*analytics-streams\)\n(.*?);;", script, flags=re.M | re.S)
    assert 'export LEADFLOW_SERVICE="$what"' in case
    assert "exec python -m services.analytics.streams worker" in case
    assert (ROOT / "services" / "analytics" / "streams.py").exists()


def test_entrypoint_starts_intakes_relay_as_intake_relay(monkeypatch):
    script = (DOCKER / "entrypoint.sh").read_text(encoding="utf-8")
    (case,) = re.findall(r"^\s*intake-relay\)\n(.*?);;", script, flags=re.M | re.S)
    assert 'export LEADFLOW_SERVICE="$what"' in case
    (command,) = re.findall(r"^\s*exec python -m (\S+)(.*)$", case, flags=re.M)
    module, args = command[0], command[1].split()
    assert (module, args) == ("services.intake", ["relay"])
    # ... and intake's main takes those arguments for its relay process, on the relay's port.
    from services.intake import main as intake_main

    monkeypatch.delenv("LEADFLOW_INTAKE_RELAY_PORT", raising=False)
    served = []
    monkeypatch.setattr(intake_main, "serve", lambda app, host, port: served.append((app.title, port)))
    intake_main.main(args)
    assert served == [("LeadFlow intake relay", 8011)]


@pytest.fixture
def healthcheck():
    return runpy.run_path(str(DOCKER / "healthcheck.py"))


@pytest.mark.parametrize(("service", "port"), sorted(PROCESSES.items()))
def test_healthcheck_probes_the_service_default_port(healthcheck, service, port):
    assert healthcheck["healthz_url"]({"LEADFLOW_SERVICE": service}) == f"http://127.0.0.1:{port}/healthz"


def test_healthcheck_follows_a_port_override(healthcheck):
    env = {"LEADFLOW_SERVICE": "followup", "LEADFLOW_FOLLOWUP_PORT": "9103"}
    assert healthcheck["healthz_url"](env) == "http://127.0.0.1:9103/healthz"


def test_healthcheck_follows_the_streams_worker_port_override(healthcheck):
    env = {"LEADFLOW_SERVICE": "analytics-streams", "LEADFLOW_ANALYTICS_STREAMS_PORT": "9114"}
    assert healthcheck["healthz_url"](env) == "http://127.0.0.1:9114/healthz"


def test_healthcheck_follows_the_intake_relay_port_override(healthcheck):
    env = {"LEADFLOW_SERVICE": "intake-relay", "LEADFLOW_INTAKE_RELAY_PORT": "9111", "LEADFLOW_INTAKE_PORT": "9101"}
    assert healthcheck["healthz_url"](env) == "http://127.0.0.1:9111/healthz"


def test_healthcheck_without_a_known_service_fails_loudly(healthcheck):
    with pytest.raises(SystemExit, match="LEADFLOW_SERVICE must be one of"):
        healthcheck["healthz_url"]({"LEADFLOW_SERVICE": "billing"})


def test_healthcheck_reports_unhealthy_when_nothing_answers(healthcheck, monkeypatch):
    monkeypatch.setenv("LEADFLOW_SERVICE", "intake")
    monkeypatch.setenv("LEADFLOW_INTAKE_PORT", "1")
    assert healthcheck["main"]() == 1
