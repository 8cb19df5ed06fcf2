"""Turning what people type into clean values: E.164 phones, tidy names, lower-cased emails and WeChat ids.

Pure functions, no I/O. Each raises :class:`InvalidValue` with a message meant for the person who typed it.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers


class InvalidValue(ValueError):
    """A value that cannot be normalised; the message says why."""


def normalise_text(raw: str | None) -> str | None:
    """NFKC (full-width letters, digits and spaces become ASCII), collapse whitespace, trim; blank → None."""
    if raw is None:
        return None
    text = " ".join(unicodedata.normalize("NFKC", raw).split())  # str.split() splits on exactly what \s matches
    return text or None


# The commonest phone by far, a mainland China mobile number, is decided with phonenumbers' own CN
# patterns (~3 µs instead of ~200 µs for the full parse). Only a number those patterns call a mobile
# takes this path, so it accepts exactly what the full parse accepts and answers the same E.164.
_CN = phonenumbers.PhoneMetadata.metadata_for_region("CN")
_CN_NUMBER = re.compile(_CN.general_desc.national_number_pattern)
_CN_MOBILE = re.compile(_CN.mobile.national_number_pattern)
_CN_MOBILE_SHAPE = re.compile(r"(\+86)?(1\d{10})")
_SEPARATORS = str.maketrans("", "", " -")


def _cn_mobile(text: str, default_region: str) -> str | None:
    match = _CN_MOBILE_SHAPE.fullmatch(text.translate(_SEPARATORS))
    if match is None or (match[1] is None and default_region != "CN"):
        return None
    national = match[2]
    return "+86" + national if _CN_NUMBER.fullmatch(national) and _CN_MOBILE.fullmatch(national) else None


def normalise_phone(raw: str, default_region: str = "CN") -> str:
    """``138 0013 8000``, ``+86 138-0013-8000``, ``0086 13800138000``, ``(010) 6552 9988`` → E.164."""
    text = normalise_text(raw) or ""
    if text.startswith("00"):  # the international call prefix used in China and most of the world
        text = "+" + text[2:]
    return _cn_mobile(text, default_region) or _parsed_phone(text, raw, default_region)


def _parsed_phone(text: str, raw: str, default_region: str) -> str:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Deliberately simple: one @, a dotted domain, no spaces. Deliverability is the mail server's business.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def normalise_email(raw: str | None) -> str | None:
    text = normalise_text(raw)
    if text is None:
        return None
    email = text.replace(" ", "").lower()
    if not _EMAIL.match(email):
        raise InvalidValue(f"not an email address: {raw!r}")
    return email


# WeChat ids: 6–20 characters, a letter first, then letters, digits, '_' or '-'. Many people use their
# phone number instead, and Chinese spreadsheets often say "same as the phone".
_WECHAT = re.compile(r"^[a-z][a-z0-9_-]{5,19}$")
SAME_AS_PHONE = frozenset({"同手机", "同手机号", "同号", "手机同号", "微信同号", "同电话", "同上", "same as phone"})


def normalise_wechat(raw: str | None, phone_e164: str | None, default_region: str = "CN") -> str | None:
    text = normalise_text(raw)
    if text is None:
        return None
    if text.lower() in SAME_AS_PHONE:
        return phone_e164
    wechat = text.replace(" ", "").lower()
    if _WECHAT.match(wechat):
        return wechat
    try:
        return normalise_phone(text, default_region)
    except InvalidValue:
        raise InvalidValue(
            f"not a WeChat id: {raw!r} (6-20 letters, digits, '_' or '-', starting with a letter; or a phone number)"
        ) from None


# Channel names people type, mapped to the contract's channel vocabulary; anything else stays free text.
SOURCE_ALIASES = {
    "官网": "web_form",
    "网站": "web_form",
    "表单": "web_form",
    "官网表单": "web_form",
    "展会": "trade_show",
    "展览": "trade_show",
    "转介绍": "referral",
    "推荐": "referral",
    "介绍": "referral",
    "搜索广告": "search_ads",
    "百度推广": "search_ads",
    "竞价": "search_ads",
    "导入": "import",
}


def normalise_source(raw: str | None) -> str | None:
    """``Trade Show`` → ``trade_show``, ``展会`` → ``trade_show``; unknown channels are kept as typed."""
    text = normalise_text(raw)
    if text is None:
        return None
    if text in SOURCE_ALIASES:
        return SOURCE_ALIASES[text]
    return re.sub(r"[\s-]+", "_", text.lower())


def normalise_tags(raw: list[str]) -> list[str]:
    """Trimmed, blank ones dropped, each once, first spelling kept."""
    seen: dict[str, str] = {}
    for tag in raw:
        text = normalise_text(tag)
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
    return list(seen.values())
