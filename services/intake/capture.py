"""What a channel submits, and how it becomes a :class:`NewLead`: validation and normalisation, no I/O.

One path for every channel (single capture, batch items, CSV rows), so they accept and reject alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field, ValidationError

from services.intake.domain import PROFILE_FIELDS, NewLead
from services.intake.normalise import (
    InvalidValue,
    normalise_email,
    normalise_phone,
    normalise_source,
    normalise_tags,
    normalise_text,
    normalise_wechat,
)
from shared.text import OptionalFreeText, OptionalSingleLine, SingleLine

FieldErrors = list[dict[str, str]]


class InvalidLead(ValueError):
    """The submission cannot become a lead; ``errors`` are ``{field, message}`` for the person who sent it."""

    def __init__(self, errors: FieldErrors) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class ClaimNotAllowed(InvalidLead):
    """Only a rep reports (报备) a lead for themself."""


class ContactIn(BaseModel):
    """One person in the customer's decision chain."""

    name: SingleLine = Field(max_length=200)
    role: Literal["decision_maker", "user", "influencer", "purchaser"]
    phone: OptionalSingleLine = Field(default=None, max_length=40)
    email: OptionalSingleLine = Field(default=None, max_length=320)


class LeadIn(BaseModel):
    """A lead as a channel submits it. ``phone`` may be written any common way; it is stored as E.164.

    Every text field is a single line without control characters, bidi overrides or lone surrogates;
    ``needs`` is free text, where tab and line breaks are allowed."""

    name: SingleLine = Field(max_length=200, examples=["李四"])
    phone: SingleLine = Field(max_length=40, examples=["138 0013 8000"])
    source: SingleLine = Field(max_length=100, description="Channel: web_form, trade_show, referral, search_ads, import, api, …")
    email: OptionalSingleLine = Field(default=None, max_length=320)
    wechat: OptionalSingleLine = Field(default=None, max_length=100, description="WeChat id, or 同手机 when it is the phone")
    company: OptionalSingleLine = Field(default=None, max_length=300)
    title: OptionalSingleLine = Field(default=None, max_length=200)
    industry: OptionalSingleLine = Field(default=None, max_length=100)
    region: OptionalSingleLine = Field(default=None, max_length=100)
    company_size: OptionalSingleLine = Field(default=None, max_length=50, examples=["200-500人"])
    needs: OptionalFreeText = Field(default=None, max_length=5000)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=50)
    tags: list[SingleLine] = Field(default_factory=list, max_length=50)
    claim: bool = Field(default=False, description="A rep reports (报备) the lead for themself: reported_by = the caller.")


def pydantic_errors(exc: ValidationError) -> FieldErrors:
    return [{"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]} for err in exc.errors()]


def parse_lead(data: Any, *, default_region: str, captured_by: str, role: str) -> NewLead:
    """Validate raw JSON (a batch item) and normalise it; raises :class:`InvalidLead`."""
    try:
        body = LeadIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidLead(pydantic_errors(exc)) from None
    return prepare(body, default_region=default_region, captured_by=captured_by, role=role)


def prepare(body: LeadIn, *, default_region: str, captured_by: str, role: str) -> NewLead:
    """Normalise a validated submission; every problem is reported at once, by field."""
    errors: FieldErrors = []

    def clean(field: str, normalise: Any, *args: Any) -> Any:
        try:
            return normalise(*args)
        except InvalidValue as exc:
            errors.append({"field": field, "message": str(exc)})
            return None

    name = normalise_text(body.name)
    if name is None:
        errors.append({"field": "name", "message": "must not be blank"})
    source = normalise_source(body.source)
    if source is None:
        errors.append({"field": "source", "message": "must not be blank"})
    phone = clean("phone", normalise_phone, body.phone, default_region)
    profile: dict[str, Any] = {key: normalise_text(getattr(body, key)) for key in PROFILE_FIELDS}
    profile["email"] = clean("email", normalise_email, body.email)
    profile["wechat"] = clean("wechat", normalise_wechat, body.wechat, phone, default_region)
    contacts = []
    for index, contact in enumerate(body.contacts):
        contact_name = normalise_text(contact.name)
        if contact_name is None:
            errors.append({"field": f"contacts.{index}.name", "message": "must not be blank"})
        contact_phone = (
            clean(f"contacts.{index}.phone", normalise_phone, contact.phone, default_region)
            if normalise_text(contact.phone)
            else None
        )
        contact_email = clean(f"contacts.{index}.email", normalise_email, contact.email)
        contacts.append({"name": contact_name, "role": contact.role, "phone": contact_phone, "email": contact_email})
    profile["contacts"] = contacts
    profile["tags"] = normalise_tags(body.tags)
    if body.claim and role != "rep":
        raise ClaimNotAllowed([{"field": "claim", "message": f"only a rep reports (报备) a lead for themself, not a {role}"}])
    if errors:
        raise InvalidLead(errors)
    return NewLead(
        phone=phone,
        name=name,
        source=source,
        captured_by=captured_by,
        profile=profile,
        reported_by=captured_by if body.claim else None,
    )


def with_import_fingerprint(new: NewLead) -> NewLead:
    """Mark a CSV row by its normalised content, so importing it again is recognised as a replay."""
    content = orjson.dumps(
        {"phone": new.phone, "name": new.name, "source": new.source, "profile": new.profile}, option=orjson.OPT_SORT_KEYS
    )
    return replace(new, import_fingerprint=hashlib.sha256(content).hexdigest())
