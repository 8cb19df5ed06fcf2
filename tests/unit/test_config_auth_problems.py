"""Settings, identity and problem documents shared by the services."""

import time
from datetime import timedelta
from typing import Annotated

import jwt
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared import logs
from shared.auth import CurrentPrincipal, Principal, authorize, mint_token, require_roles, verify_token
from shared.config import DEV_JWT_SECRET, ForeignSetting, ServiceSettings, parse_duration, refuse_foreign_settings
from shared.problems import Problem, install_problem_handlers
from shared.service import ObserveRequests


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90s", timedelta(seconds=90)),
        ("48h", timedelta(hours=48)),
        ("30d", timedelta(days=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(minutes=90)),
        (12, timedelta(seconds=12)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "10", "ten days", "5y", "-3d"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_dev_secret_is_refused_outside_development(monkeypatch):
    monkeypatch.setenv("LEADFLOW_ENV", "production")
    monkeypatch.delenv("LEADFLOW_JWT_SECRET", raising=False)
    with pytest.raises(ValueError, match="JWT_SECRET"):
        ServiceSettings()
    monkeypatch.setenv("LEADFLOW_JWT_SECRET", "s3cret-from-a-vault")
    assert ServiceSettings().jwt_secret == "s3cret-from-a-vault"


def test_database_url_is_split_for_eventsourcing():
    s = ServiceSettings(database_url="postgresql://u%40x:p%3Aw@db.local:6543/leads")
    assert s.postgres_params() == {"host": "db.local", "port": "6543", "user": "u@x", "password": "p:w", "dbname": "leads"}


def make_client() -> TestClient:
    app = FastAPI()
    app.state.settings = ServiceSettings()
    install_problem_handlers(app)

    class Body(BaseModel):
        n: int

    @app.get("/me")
    def me(principal: CurrentPrincipal) -> dict:
        return {"sub": principal.sub, "role": principal.role}

    @app.post("/managers-only")
    def managers(body: Body, principal: Annotated[Principal, require_roles("manager", "admin")]) -> dict:
        return {"n": body.n}

    @app.get("/conflict")
    def conflict() -> dict:
        raise Problem(409, "claim-limit", "Too many leads.", lead_id="l1")

    return TestClient(app)


def bearer(role: str, sub: str = "rep-1", secret: str = DEV_JWT_SECRET, ttl: int = 60) -> dict:
    return {"Authorization": f"Bearer {mint_token(secret, sub, role, ttl)}"}


def test_valid_token_identifies_the_caller():
    r = make_client().get("/me", headers=bearer("rep", "rep-9"))
    assert r.json() == {"sub": "rep-9", "role": "rep"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer nonsense"},
        bearer("rep", secret="other-secret"),
        bearer("rep", ttl=-10),
        bearer("superuser"),
    ],
)
def test_missing_or_bad_tokens_get_401_problem(headers):
    r = make_client().get("/me", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:leadflow:problem:unauthorized"


def test_wrong_role_gets_403():
    r = make_client().post("/managers-only", json={"n": 1}, headers=bearer("rep"))
    assert r.status_code == 403 and r.json()["status"] == 403


def test_validation_errors_are_problems_with_field_errors():
    r = make_client().post("/managers-only", json={"n": "x"}, headers=bearer("manager"))
    assert r.status_code == 422
    body = r.json()
    assert body["type"] == "urn:leadflow:problem:validation-error"
    assert body["errors"][0]["field"] == "n"


def test_problem_extension_members_and_unknown_routes():
    client = make_client()
    body = client.get("/conflict").json()
    assert body == {
        "type": "urn:leadflow:problem:claim-limit",
        "title": "Conflict",
        "status": 409,
        "detail": "Too many leads.",
        "instance": "/conflict",
        "lead_id": "l1",
    }
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_a_verified_token_is_remembered_only_for_its_own_secret_and_until_it_expires():
    token = mint_token(DEV_JWT_SECRET, "rep-7", "rep", ttl_seconds=2)
    assert verify_token(DEV_JWT_SECRET, token) == Principal(sub="rep-7", role="rep")
    with pytest.raises(Problem) as other_secret:
        verify_token("another-secret-of-32-bytes-or-more", token)
    assert other_secret.value.status == 401
    time.sleep(2.1)
    with pytest.raises(Problem, match="expired"):
        verify_token(DEV_JWT_SECRET, token)


def test_authorize_checks_token_and_role_like_the_dependency():
    app = FastAPI()
    app.state.settings = ServiceSettings()
    install_problem_handlers(app)

    @app.post("/reps-only")
    async def reps_only(request: Request) -> dict:
        return {"sub": authorize(request, ("rep",)).sub}

    client = TestClient(app)
    assert client.post("/reps-only", headers=bearer("rep", "rep-3")).json() == {"sub": "rep-3"}
    assert client.post("/reps-only", headers=bearer("manager")).status_code == 403
    assert client.post("/reps-only").status_code == 401


@pytest.mark.parametrize(
    "name",
    ["ASSIGNMENT_PERSISTENCE_MODULE", "PERSISTENCE_MODULE", "POSTGRES_ENABLE_DB_FUNCTIONS", "FOLLOWUP_POSTGRES_SCHEMA"],
)
def test_an_event_store_setting_outside_leadflows_stops_start_up_naming_it(name):
    with pytest.raises(ForeignSetting, match=name):
        refuse_foreign_settings({name: "eventsourcing.popo", "PATH": "/usr/bin"})


def test_leadflows_own_settings_and_unrelated_variables_are_fine():
    refuse_foreign_settings({"LEADFLOW_DATABASE_URL": "postgresql://x", "HOME": "/root", "PYTHONPATH": "."})


def test_the_event_store_ignores_the_process_environment(monkeypatch):
    from eventsourcing.popo import POPOProcessRecorder

    from shared.eventstore import EventSourcedApplication

    monkeypatch.setenv("PROBE_PERSISTENCE_MODULE", "eventsourcing.sqlite")
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.sqlite")

    class Probe(EventSourcedApplication):
        name = "probe"

    app = Probe(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    assert isinstance(app.recorder, POPOProcessRecorder)


def test_an_unreachable_database_is_answered_503_with_retry_after_not_500():
    import psycopg

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/needs-db")
    def needs_db() -> dict[str, str]:
        raise psycopg.OperationalError("connection refused")

    @app.get("/bug")
    def bug() -> dict[str, str]:
        raise KeyError("oops")

    client = TestClient(app, raise_server_exceptions=False)
    down = client.get("/needs-db")
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert down.headers["retry-after"] == "2"
    assert down.json()["type"] == "urn:leadflow:problem:service-unavailable"
    assert client.get("/bug").status_code == 500


@pytest.mark.parametrize(
    "sub, role",
    [("rep\x00-1", "rep"), ("rep-\u202e1", "rep"), ("rep\n1", "rep"), ("rep-1", "rep\x00"), ("mgr-1", "manager\u2066")],
)
def test_a_token_whose_claims_are_not_clean_text_gets_401(sub, role):
    """The subject is recorded as the actor of what the caller does (rep_id, captured_by), in events kept forever."""
    r = make_client().get(
        "/me",
        headers={"Authorization": f"Bearer {jwt.encode({'sub': sub, 'role': role, 'exp': time.time() + 60}, DEV_JWT_SECRET)}"},
    )
    assert r.status_code == 401 and r.json()["type"] == "urn:leadflow:problem:unauthorized"


def test_a_correlation_id_that_is_not_clean_text_is_replaced():
    app = FastAPI()
    app.add_middleware(ObserveRequests, service="test")

    @app.get("/cid")
    def cid() -> dict:
        return {"cid": logs.correlation_id.get()}

    client = TestClient(app)
    assert client.get("/cid", headers={"x-correlation-id": "req-42"}).json() == {"cid": "req-42"}
    replaced = client.get("/cid", headers={"x-correlation-id": b"req\x85\x9b42"})
    assert replaced.json()["cid"] != "req\x85\x9b42" and replaced.headers["x-correlation-id"] == replaced.json()["cid"]
