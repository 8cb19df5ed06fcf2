"""The people directory over the topic: people the console's CLI adds and deactivates reach assignment, which
then refuses to give a deactivated rep any lead."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import auth, eventually


def capture(services) -> str:
    body = {"name": "周杰", "phone": "137" + str(uuid.uuid4().int)[:8], "source": "referral"}
    response = httpx.post(f"{services.url('intake')}/leads", json=body, headers=auth("integration", "crm"))
    assert response.status_code == 201, response.text
    return response.json()["lead_id"]


def assign(services, lead_id: str, rep: str) -> httpx.Response:
    url = f"{services.url('assignment')}/leads/{lead_id}/assign"
    return httpx.post(url, json={"rep_id": rep}, headers=auth("manager", "mgr-dir"))


def test_a_rep_deactivated_in_the_directory_is_given_no_lead(services):
    rep = f"rep-{uuid.uuid4().hex[:6]}"
    added = services.run("services.console", "users", "add", "--username", rep, "--password", "s3cret-passw0rd", "--role", "rep")
    assert added.returncode == 0, added.stderr
    first, second = capture(services), capture(services)
    eventually(lambda: assign(services, first, rep).status_code == 200)

    assert services.run("services.console", "users", "deactivate", rep).returncode == 0

    def refused() -> httpx.Response:
        response = assign(services, second, rep)
        assert response.status_code == 409, response.text
        return response

    problem = eventually(refused).json()
    assert problem["type"] == "urn:leadflow:problem:rep-inactive"
    assert services.run("services.console", "users", "reactivate", rep).returncode == 0
    eventually(lambda: assign(services, second, rep).status_code == 200)
