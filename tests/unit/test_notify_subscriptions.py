"""Webhook subscriptions: what is refused (naming the field), the secret, and signatures a third-party verifier accepts."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from services.notify.domain.subscriptions import (
    InvalidSubscription,
    checked_types,
    checked_url,
    generate_secret,
    secret_key,
    sign_delivery,
    wants,
)
from shared.events import PAYLOADS


def field_of(call, *args) -> str:
    with pytest.raises(InvalidSubscription) as refused:
        call(*args)
    return refused.value.field


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "example.com/hook", "javascript:alert(1)", "http://", "https://u:p@example.com/"]
)
def test_a_url_that_is_not_a_plain_http_url_is_refused(url):
    assert field_of(checked_url, url) == "url"


def test_http_and_https_urls_pass():
    assert checked_url("https://hooks.example.com/leadflow?x=1") == "https://hooks.example.com/leadflow?x=1"
    assert checked_url("http://203.0.113.9:8080/in") == "http://203.0.113.9:8080/in"


@pytest.mark.parametrize(
    "secret", ["whsec_" + base64.b64encode(b"x" * 23).decode(), "whsec_not base64!", "plain-secret-without-prefix", "whsec_"]
)
def test_a_secret_too_short_or_malformed_is_refused(secret):
    assert field_of(secret_key, secret) == "secret"


def test_a_generated_secret_is_a_standard_webhooks_secret_of_32_bytes():
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == 32
    assert generate_secret() != secret


def test_unknown_event_types_are_refused_and_none_or_empty_means_every_type():
    assert field_of(checked_types, ["LeadCaptured", "LeadTeleported"], PAYLOADS.keys()) == "types"
    assert checked_types(None, PAYLOADS.keys()) is None
    assert checked_types([], PAYLOADS.keys()) is None
    types = checked_types(["LeadWon", "LeadCaptured", "LeadWon"], PAYLOADS.keys())
    assert types == ["LeadCaptured", "LeadWon"]
    assert wants(types, "LeadWon") and not wants(types, "LeadLost") and wants(None, "LeadLost")


def test_the_signature_is_accepted_by_the_standardwebhooks_package():
    secret = generate_secret()
    body = b'{"specversion":"1.0","id":"e-1","type":"LeadCaptured","data":{"name":"\xe7\x8e\x8b\xe8\x8a\xb3"}}'
    now = int(datetime.now(UTC).timestamp())
    headers = sign_delivery(secret_key(secret), "e-1", now, body).as_dict()
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["webhook-id"] == "e-1" and headers["webhook-timestamp"] == str(now)
    assert Webhook(secret).verify(body, headers)["id"] == "e-1"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"e-1", b"e-2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_during_a_rotation_both_the_new_and_the_old_secret_verify():
    new, old = generate_secret(), generate_secret()
    body, now = b'{"id":"e-2"}', int(datetime.now(UTC).timestamp())
    headers = sign_delivery(secret_key(new), "e-2", now, body, secret_key(old)).as_dict()
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(new).verify(body, headers) == Webhook(old).verify(body, headers) == {"id": "e-2"}
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
