"""deploy/k8s: both overlays render with kustomize, and what they render is fit to run.

kustomize comes from PATH or from the cache where `.ci/run` / `make deploy-check` install it
(`go install sigs.k8s.io/kustomize/kustomize/v5`). A missing tool fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.test_deploy_settings import settings_variables

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
# The services the console calls over HTTP.
CONSOLE_UPSTREAMS = ("intake", "assignment", "followup", "analytics")
SERVICES = {"intake": 8001, "assignment": 8002, "followup": 8003, "analytics": 8004, "notify": 8005, "console": 8000}
HTTP_SIDE = {"intake", "analytics"}
STREAMS = "analytics-streams"  # analytics' faust worker: no database, so no readiness beyond being alive
RELAY = "intake-relay"  # intake's outbox relay: one replica publishes, the others stand by (advisory lock)


def kustomize() -> str:
    cache = Path(os.environ.get("LEADFLOW_CACHE", Path.home() / ".cache" / "leadflow")) / "tools" / "kustomize"
    found = shutil.which("kustomize") or (str(cache) if cache.exists() else None)
    if found is None:
        pytest.fail(f"kustomize not found on PATH nor at {cache}: run `make deploy-check` (it runs go install)")
    return found


def build(overlay: Path) -> list[dict]:
    result = subprocess.run([kustomize(), "build", str(overlay)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kustomize build {overlay} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, build(K8S / "overlays" / request.param)


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def problems_of(deployment: dict, ready_path: str = "/readyz") -> list[str]:
    """What a Deployment lacks to be run safely: probes on the right paths, resources, a non-root user."""
    found = []
    pod = deployment["spec"]["template"]["spec"]
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        found.append("pod is not runAsNonRoot")
    for container in pod["containers"]:
        name = container["name"]
        if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != ready_path:
            found.append(f"{name}: no readinessProbe on {ready_path}")
        if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            found.append(f"{name}: no livenessProbe on /healthz")
        resources = container.get("resources", {})
        for kind in ("cpu", "memory"):
            if kind not in resources.get("requests", {}):
                found.append(f"{name}: no {kind} request")
        if "memory" not in resources.get("limits", {}):
            found.append(f"{name}: no memory limit")
    return found


def test_every_deployment_has_probes_resources_and_a_non_root_user(rendered):
    overlay, docs = rendered
    deployments = of_kind(docs, "Deployment")
    assert set(deployments) == {f"leadflow-{service}" for service in (*SERVICES, RELAY, STREAMS)}
    for name, deployment in deployments.items():
        ready_path = "/healthz" if name == f"leadflow-{STREAMS}" else "/readyz"
        assert problems_of(deployment, ready_path) == [], f"{overlay}/{name}"


def test_the_check_catches_a_deployment_without_probes_or_resources(tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S / "base", overlay)],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": "leadflow-intake"},
                        "patch": yaml.safe_dump(
                            [
                                {"op": "remove", "path": "/spec/template/spec/containers/0/readinessProbe"},
                                {"op": "remove", "path": "/spec/template/spec/containers/0/resources"},
                            ]
                        ),
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    intake = of_kind(build(overlay), "Deployment")["leadflow-intake"]
    assert problems_of(intake) == [
        "intake: no readinessProbe on /readyz",
        "intake: no cpu request",
        "intake: no memory request",
        "intake: no memory limit",
    ]


def test_a_broken_overlay_does_not_render(tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources: [missing.yaml]\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="kustomize build"):
        build(overlay)


@pytest.mark.parametrize(("service", "port"), sorted(SERVICES.items()))
def test_each_service_runs_its_own_process_on_its_port_behind_a_service(rendered, service, port):
    _, docs = rendered
    deployment = of_kind(docs, "Deployment")[f"leadflow-{service}"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [service]
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    env = {item["name"]: item["value"] for item in container["env"]}
    # intake records only: intake-relay publishes what it records.
    relay = {"LEADFLOW_INTAKE_EMBEDDED_RELAY": "false"} if service == "intake" else {}
    # The console reaches the other services by their Services' names, and sits behind TLS.
    upstreams = (
        {
            f"LEADFLOW_{name.upper()}_URL": f"http://leadflow-{name}:{p}"
            for name, p in SERVICES.items()
            if name in CONSOLE_UPSTREAMS
        }
        | {"LEADFLOW_CONSOLE_COOKIE_SECURE": "true"}
        if service == "console"
        else {}
    )
    assert env == {"LEADFLOW_SERVICE": service, f"LEADFLOW_{service.upper()}_PORT": str(port), **relay, **upstreams}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    service_doc = of_kind(docs, "Service")[f"leadflow-{service}"]
    assert service_doc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service_doc["spec"]["ports"][0]["port"] == port


def test_the_streams_worker_runs_its_own_process_once_behind_a_service(rendered):
    _, docs = rendered
    deployment = of_kind(docs, "Deployment")[f"leadflow-{STREAMS}"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [STREAMS]
    assert container["ports"] == [{"name": "http", "containerPort": 8014}]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {"LEADFLOW_SERVICE": STREAMS, "LEADFLOW_ANALYTICS_STREAMS_PORT": "8014"}
    assert deployment["spec"]["replicas"] == 1
    assert container["resources"]["requests"]["cpu"] == "100m", "the HTTP side's production patch is not for it"
    service_doc = of_kind(docs, "Service")[f"leadflow-{STREAMS}"]
    assert service_doc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service_doc["spec"]["ports"][0]["port"] == 8014


def test_intakes_relay_runs_its_own_process_with_a_standby_behind_a_service(rendered):
    overlay, docs = rendered
    deployment = of_kind(docs, "Deployment")[f"leadflow-{RELAY}"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == [RELAY]
    assert container["ports"] == [{"name": "http", "containerPort": 8011}]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {"LEADFLOW_SERVICE": RELAY, "LEADFLOW_INTAKE_RELAY_PORT": "8011"}
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {
        "startupProbe": {"path": "/healthz", "port": "http"},
        "livenessProbe": {"path": "/healthz", "port": "http"},
        "readinessProbe": {"path": "/readyz", "port": "http"},
    }
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # A fixed count, never an HPA: one replica publishes; a second one stands by to take over.
    assert deployment["spec"]["replicas"] == (1 if overlay == "dev" else 2)
    assert f"leadflow-{RELAY}" not in {
        hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(docs, "HorizontalPodAutoscaler").values()
    }
    if overlay == "prod":
        budgets = of_kind(docs, "PodDisruptionBudget").values()
        assert any(pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items() for pdb in budgets)
        assert pod["spec"]["topologySpreadConstraints"], "the standby should not share the publisher's node"
    annotations = pod["metadata"]["annotations"]
    assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"]) == ("true", "8011")
    assert annotations["prometheus.io/path"] == "/metrics"
    service_doc = of_kind(docs, "Service")[f"leadflow-{RELAY}"]
    assert service_doc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service_doc["spec"]["ports"][0]["port"] == 8011


def test_deployments_set_only_variables_the_processes_read(rendered):
    _, docs = rendered
    known = settings_variables()
    for name, deployment in of_kind(docs, "Deployment").items():
        names = {item["name"] for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert names <= known, f"{name}: no LeadFlow setting reads {sorted(names - known)}"


def test_graceful_shutdown_has_time_to_drain(rendered):
    _, docs = rendered
    for name, deployment in of_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        # preStop 5 s + uvicorn's 20 s drain + 15 s for consumers and the relay.
        assert pod["terminationGracePeriodSeconds"] >= 40, name
        assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"], name


def test_config_and_secrets_are_the_settings_the_services_read(rendered):
    overlay, docs = rendered
    known = settings_variables()
    (config,) = of_kind(docs, "ConfigMap").values()
    assert set(config["data"]) <= known, set(config["data"]) - known
    template = yaml.safe_load((K8S / "base" / "secret.template.yaml").read_text(encoding="utf-8"))
    assert set(template["stringData"]) == {"LEADFLOW_JWT_SECRET", "LEADFLOW_DATABASE_URL"}
    secrets = of_kind(docs, "Secret")
    if overlay == "prod":
        assert not secrets, "production secrets are created out of band from secret.template.yaml, never committed"
        assert config["data"]["LEADFLOW_ENV"] == "production"
        secret_name = template["metadata"]["name"]
    else:
        (secret,) = secrets.values()
        assert set(secret["data"]) == set(template["stringData"])
        assert config["data"]["LEADFLOW_ENV"] == "development"
        secret_name = secret["metadata"]["name"]
    for deployment in of_kind(docs, "Deployment").values():
        refs = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert refs == [{"configMapRef": {"name": config["metadata"]["name"]}}, {"secretRef": {"name": secret_name}}]


def test_topic_bootstrap_job(rendered):
    _, docs = rendered
    job = of_kind(docs, "Job")["leadflow-topic-bootstrap"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["bootstrap-topic"]
    assert {"name": "LEADFLOW_TOPIC_PARTITIONS", "value": "6"} in container["env"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_the_http_side_autoscales_and_has_disruption_budgets(rendered):
    overlay, docs = rendered
    deployments = of_kind(docs, "Deployment")
    autoscalers = of_kind(docs, "HorizontalPodAutoscaler")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in autoscalers.values()} == {f"leadflow-{s}" for s in HTTP_SIDE}
    for hpa in autoscalers.values():
        target = deployments[hpa["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "the HPA owns the replica count"
        assert hpa["spec"]["maxReplicas"] <= 6, "more consumers than the topic's 6 partitions would sit idle"
    budgets = of_kind(docs, "PodDisruptionBudget")
    if overlay == "prod":
        for service in HTTP_SIDE:
            labels = deployments[f"leadflow-{service}"]["spec"]["template"]["metadata"]["labels"]
            assert any(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items() for pdb in budgets.values()), service
            assert autoscalers[f"leadflow-{service}"]["spec"]["minReplicas"] >= 2
    for service in SERVICES.keys() - HTTP_SIDE:
        assert deployments[f"leadflow-{service}"]["spec"]["replicas"] == 1, "one scheduler and relay per command service"


def test_production_pins_its_image(rendered):
    overlay, docs = rendered
    images = {c["image"] for d in docs if d["kind"] in ("Deployment", "Job") for c in d["spec"]["template"]["spec"]["containers"]}
    assert len(images) == 1
    if overlay == "prod":
        (image,) = images
        assert not image.endswith((":latest", ":dev")) and ":" in image
