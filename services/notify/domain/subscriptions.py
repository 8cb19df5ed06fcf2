"""Webhook subscriptions: what a valid one is, its secret, and the Standard Webhooks signature of a delivery.

Signatures follow the Standard Webhooks specification: the secret is ``whsec_`` + base64 of 24–64 random bytes;
a delivery carries ``webhook-id`` (the CloudEvents id, the same on every attempt, so receivers de-duplicate),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``: ``v1,`` + base64 of
HMAC-SHA256 over ``"{id}.{timestamp}.{body}"`` keyed by the secret's decoded bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64
GENERATED_SECRET_BYTES = 32
URL_MAX_LENGTH = 2048


class InvalidSubscription(ValueError):
    """A subscription the API refuses (422), naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for (its base64-decoded bytes); refuses one too short or malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSubscription("secret", f"must start with {SECRET_PREFIX} followed by base64")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSubscription("secret", f"is not base64 after {SECRET_PREFIX}") from exc
    if len(key) < SECRET_MIN_BYTES:
        raise InvalidSubscription("secret", f"is too short: {len(key)} bytes, at least {SECRET_MIN_BYTES} (192 bits)")
    if len(key) > SECRET_MAX_BYTES:
        raise InvalidSubscription("secret", f"is too long: {len(key)} bytes, at most {SECRET_MAX_BYTES}")
    return key


def checked_url(url: str) -> str:
    """An absolute http(s) URL with a host, no credentials and no fragment (where the receiver listens)."""
    if len(url) > URL_MAX_LENGTH:
        raise InvalidSubscription("url", f"is longer than {URL_MAX_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        raise InvalidSubscription("url", f"is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidSubscription("url", "must be an http:// or https:// URL")
    if not parts.hostname:
        raise InvalidSubscription("url", "has no host")
    if parts.username is not None or parts.password is not None:
        # They would be stored and shown in every delivery log: a receiver authenticates deliveries by the signature.
        raise InvalidSubscription("url", "must not carry credentials (verify the webhook signature instead)")
    if parts.fragment:
        raise InvalidSubscription("url", "must not have a fragment")
    if port == 0:
        raise InvalidSubscription("url", "port 0 is not a port")
    return url


def checked_types(types: Iterable[str] | None, known: Collection[str]) -> list[str] | None:
    """The event types a subscription wants (None or empty: every type), each a known one."""
    if types is None:
        return None
    wanted = sorted(set(types))
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise InvalidSubscription("types", f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return wanted or None


def wants(types: Collection[str] | None, event_type: str) -> bool:
    return not types or event_type in types


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """What a receiver needs to authenticate a delivery and de-duplicate it."""

    message_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            "content-type": "application/cloudevents+json",
            "webhook-id": self.message_id,
            "webhook-timestamp": str(self.timestamp),
            "webhook-signature": self.signature,
        }


def sign_delivery(key: bytes, message_id: str, timestamp: int, body: bytes, *older: bytes) -> SignedHeaders:
    """Signed with the subscription's secret and, while a rotation's grace period lasts, its previous one too: the
    header then carries both signatures, space-separated, and a receiver accepts either (Standard Webhooks)."""
    signatures = " ".join(signature(k, message_id, timestamp, body) for k in (key, *older))
    return SignedHeaders(message_id, timestamp, signatures)
