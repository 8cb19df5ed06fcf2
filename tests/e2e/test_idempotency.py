"""Idempotency-Key: a client retrying a state-changing POST with the same key gets the first answer and
nothing is recorded twice; the same key for another request is refused; another caller's key is theirs."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import auth, eventually


def phone() -> str:
    return "139" + str(uuid.uuid4().int)[:8]


def test_a_retried_capture_answers_like_the_first_and_records_one_lead(services):
    intake = services.url("intake")
    body = {"name": "钱七", "phone": phone(), "source": "api", "company": "幂等科技"}
    headers = {**auth("integration", "crm"), "Idempotency-Key": f"cap-{uuid.uuid4()}"}
    first = httpx.post(f"{intake}/leads", json=body, headers=headers)
    again = httpx.post(f"{intake}/leads", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 201 and again.json() == first.json()  # not a 409 duplicate
    assert again.headers["idempotent-replayed"] == "true"
    # Without the key the same phone is a duplicate, as always: the key only replays, it never bypasses a rule.
    plain = httpx.post(f"{intake}/leads", json=body, headers=auth("integration", "crm"))
    assert plain.status_code == 409


def test_a_retried_follow_up_is_recorded_once(services):
    intake, assignment, followup = services.url("intake"), services.url("assignment"), services.url("followup")
    created = httpx.post(
        f"{intake}/leads", json={"name": "孙八", "phone": phone(), "source": "web_form"}, headers=auth("integration", "crm")
    )
    lead = created.json()["lead_id"]
    rep = f"rep-{uuid.uuid4().hex[:6]}"
    eventually(lambda: httpx.post(f"{assignment}/leads/{lead}/claim", headers=auth("rep", rep)).status_code == 200)
    # followup learns the owner from the topic: wait for it, so the keyed request is the first that can succeed.
    eventually(lambda: httpx.get(f"{followup}/leads/{lead}/follow-ups", headers=auth("rep", rep)).json().get("owner") == rep)
    contact = {"channel": "phone", "summary": "首次沟通", "stage": "contacted"}
    headers = {**auth("rep", rep), "Idempotency-Key": str(uuid.uuid4())}
    first = httpx.post(f"{followup}/leads/{lead}/follow-ups", json=contact, headers=headers)
    assert first.status_code == 201, first.text
    again = httpx.post(f"{followup}/leads/{lead}/follow-ups", json=contact, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    timeline = httpx.get(f"{followup}/leads/{lead}/follow-ups", headers=auth("rep", rep)).json()
    assert [item["follow_up_id"] for item in timeline["follow_ups"]] == [first.json()["follow_up_id"]]


def test_the_same_key_for_a_different_request_is_refused_and_keys_belong_to_their_caller(services):
    intake = services.url("intake")
    key = f"k-{uuid.uuid4()}"
    one = {"name": "周九", "phone": phone(), "source": "api"}
    other = {"name": "吴十", "phone": phone(), "source": "api"}
    assert (
        httpx.post(f"{intake}/leads", json=one, headers={**auth("integration", "a"), "Idempotency-Key": key}).status_code == 201
    )
    reused = httpx.post(f"{intake}/leads", json=other, headers={**auth("integration", "a"), "Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["type"] == "urn:leadflow:problem:idempotency-key-reused"
    # Another caller using the same key string has a key of its own.
    theirs = httpx.post(f"{intake}/leads", json=other, headers={**auth("integration", "b"), "Idempotency-Key": key})
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers


def test_a_malformed_key_is_refused_naming_the_header(services):
    answer = httpx.post(
        f"{services.url('assignment')}/leads/{uuid.uuid4()}/claim",
        headers={**auth("rep", "rep-x"), "Idempotency-Key": "bad key with spaces"},
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"
