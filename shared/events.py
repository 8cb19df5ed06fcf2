"""The public event contract: CloudEvents 1.0 envelopes around versioned, validated payloads.

Every record on the topic is one :class:`Envelope` in structured mode, keyed by ``lead_id``, with
the header ``ce_type``. Payloads are checked when they are produced and again when they are
consumed. A breaking change to a payload bumps its ``schemaversion``; consumers register an
upcaster from the old version with :func:`register_upcaster` and keep reading old history.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal, Self, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model, field_serializer, model_validator

from shared.text import CleanJson, FreeText, OptionalFreeText, OptionalSingleLine, SingleLine, text_error

SPECVERSION = "1.0"
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1a9e-7b3e-4b8f-9a57-5c2a1e0f4d21")

Grade = Literal["A", "B", "C"]
ClaimHow = Literal["report", "claim", "assign", "auto"]
ReleaseReason = Literal["manual", "no_first_contact", "no_follow_up", "protection_expired", "reassigned", "rep_offboarded"]
Channel = Literal["phone", "email", "wechat", "visit", "meeting", "other"]
Stage = Literal["new", "assigned", "contacted", "qualified", "quoted", "negotiating", "won", "lost"]
STAGES: tuple[Stage, ...] = ("new", "assigned", "contacted", "qualified", "quoted", "negotiating", "won", "lost")


class InvalidEvent(ValueError):
    """A record that is not a valid LeadFlow event (bad JSON, envelope or payload)."""


def utc_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Open(BaseModel):
    """A model that keeps the fields it does not know (the contract lets producers add them).

    Its text is checked like text at the HTTP edge (:mod:`shared.text`), added fields included, so a
    record a foreign producer wrote with e.g. a NUL anywhere in it fails the contract instead of a
    consumer. Ignoring unknown fields would not do: analytics stores each record as it was published."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, CleanJson] = Field(init=False)

    @model_validator(mode="after")
    def _added_names_are_text(self) -> Self:
        # pydantic validates the values of added fields with the annotation above, not their names.
        for name in self.__pydantic_extra__ or ():
            if (error := text_error(name)) is not None:
                raise ValueError(f"the name of the added field {name!r} {error}")
        return self


class _Times(_Open):
    @field_serializer("*", when_used="json", check_fields=False)
    def _times_as_rfc3339(self, value: Any) -> Any:
        return utc_rfc3339(value) if isinstance(value, datetime) else value


class Payload(_Times):
    """Base of every lead event's payload, keyed (and its envelope's ``subject``) by ``lead_id``.
    Unknown fields are kept: the contract lets producers add fields."""

    lead_id: SingleLine

    @property
    def key(self) -> str:
        return self.lead_id


class DirectoryPayload(_Times):
    """Base of the people directory's events, keyed (and ``subject``) by the person's ``rep_id`` (their username)."""

    rep_id: SingleLine

    @property
    def key(self) -> str:
        return self.rep_id


class Contact(_Open):
    """One person in the customer's decision chain."""

    name: SingleLine
    role: Literal["decision_maker", "user", "influencer", "purchaser"]
    phone: OptionalSingleLine = None
    email: OptionalSingleLine = None


class LeadCaptured(Payload):
    """A new lead entered LeadFlow (intake). ``phone`` is E.164 and identifies the lead."""

    name: SingleLine
    phone: SingleLine
    source: SingleLine
    email: OptionalSingleLine = None
    wechat: OptionalSingleLine = None
    company: OptionalSingleLine = None
    title: OptionalSingleLine = None
    industry: OptionalSingleLine = None
    region: OptionalSingleLine = None
    company_size: OptionalSingleLine = None
    needs: OptionalFreeText = None
    contacts: list[Contact] = Field(default_factory=list)
    score: int = Field(ge=0, le=100)
    grade: Grade
    tags: list[SingleLine] = Field(default_factory=list)
    captured_by: SingleLine
    reported_by: OptionalSingleLine = None
    score_reasons: list[dict[SingleLine, CleanJson]] = Field(default_factory=list)
    possible_duplicates: list[SingleLine] = Field(
        default_factory=list, description="ids of leads that look like the same customer"
    )


class LeadRecaptured(Payload):
    """A capture attempt for a phone that already is a lead; kept for channel attribution."""

    source: SingleLine
    captured_by: SingleLine


class LeadScored(Payload):
    """The lead's score changed; ``reasons`` say which rule added how many points."""

    score: int = Field(ge=0, le=100)
    grade: Grade
    previous_score: int | None = None
    previous_grade: Grade | None = None
    reasons: list[dict[SingleLine, CleanJson]] = Field(default_factory=list)
    signal: OptionalSingleLine = None


class LeadClaimed(Payload):
    """A rep now owns the lead (assignment)."""

    rep_id: SingleLine
    how: ClaimHow
    protected_until: datetime
    assigned_by: OptionalSingleLine = None


class LeadReleased(Payload):
    """The lead left ``rep_id`` and is back in the public pool (unless a claim follows at once)."""

    rep_id: SingleLine
    reason: ReleaseReason
    cooldown_until: datetime
    released_by: OptionalSingleLine = None


class FollowUpLogged(Payload):
    """A rep contacted the customer (followup). ``stage`` is the lead's stage after it."""

    follow_up_id: SingleLine
    rep_id: SingleLine
    channel: Channel
    summary: FreeText
    pain_points: OptionalFreeText = None
    objections: OptionalFreeText = None
    next_step: OptionalFreeText = None
    next_follow_up_at: datetime | None = None
    stage: Stage
    tags: list[SingleLine] = Field(default_factory=list)
    logged_at: datetime | None = None


class LeadStageChanged(Payload):
    """The lead moved between pipeline stages."""

    from_stage: Stage
    to_stage: Stage
    rep_id: OptionalSingleLine = None
    changed_by: OptionalSingleLine = None


class LeadWon(Payload):
    """The deal was won (final)."""

    rep_id: OptionalSingleLine = None
    amount: float | None = None
    currency: OptionalSingleLine = None


class LeadLost(Payload):
    """The deal was lost (final)."""

    rep_id: OptionalSingleLine = None
    reason: FreeText


class FollowUpTaskScheduled(Payload):
    """A reminder or SOP task is due for the lead's owner."""

    task_id: SingleLine
    rep_id: SingleLine
    kind: SingleLine
    title: SingleLine
    due_at: datetime


class FollowUpTaskCompleted(Payload):
    """A task was done, by a follow-up or by hand."""

    task_id: SingleLine
    rep_id: SingleLine
    completed_at: datetime
    on_time: bool
    follow_up_id: OptionalSingleLine = None


class FollowUpTaskOverdue(Payload):
    """A task passed its due time without being done; ``escalated_to`` is the manager told."""

    task_id: SingleLine
    rep_id: SingleLine
    due_at: datetime
    escalated_to: OptionalSingleLine = None


class FollowUpTaskCancelled(Payload):
    """A task no longer applies (the lead was released, won or lost)."""

    task_id: SingleLine
    rep_id: SingleLine
    reason: SingleLine


class PersonalDataErased(Payload):
    """The customer's personal data was erased; consumers drop what they hold of it."""

    erased_by: SingleLine


Role = Literal["rep", "manager", "admin"]


class RepJoined(DirectoryPayload):
    """A person joined the directory (console): who they are, their role, team and manager, how to reach them."""

    display_name: SingleLine
    role: Role
    team: OptionalSingleLine = None
    manager: OptionalSingleLine = None
    email: OptionalSingleLine = None
    phone: OptionalSingleLine = None
    joined_by: OptionalSingleLine = None


class RepDeactivated(DirectoryPayload):
    """The person may no longer sign in, own or be assigned leads (their leads are moved by offboarding)."""

    deactivated_by: OptionalSingleLine = None


class RepReactivated(DirectoryPayload):
    """A deactivated person is active again."""

    reactivated_by: OptionalSingleLine = None


class TeamChanged(DirectoryPayload):
    """The person moved to another team, or has another manager (``None``: none)."""

    team: OptionalSingleLine = None
    manager: OptionalSingleLine = None
    changed_by: OptionalSingleLine = None


DIRECTORY_PAYLOADS: dict[str, type[DirectoryPayload]] = {
    cls.__name__: cls for cls in (RepJoined, RepDeactivated, RepReactivated, TeamChanged)
}

PAYLOADS: dict[str, type[Payload] | type[DirectoryPayload]] = {
    cls.__name__: cls
    for cls in (
        LeadCaptured,
        LeadRecaptured,
        LeadScored,
        LeadClaimed,
        LeadReleased,
        FollowUpLogged,
        LeadStageChanged,
        LeadWon,
        LeadLost,
        FollowUpTaskScheduled,
        FollowUpTaskCompleted,
        FollowUpTaskOverdue,
        FollowUpTaskCancelled,
        PersonalDataErased,
    )
} | DIRECTORY_PAYLOADS
LEAD_EVENT_TYPES: frozenset[str] = frozenset(name for name in PAYLOADS if name not in DIRECTORY_PAYLOADS)
CURRENT_VERSION: dict[str, int] = dict.fromkeys(PAYLOADS, 1)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(event_type: str, from_version: int, upcaster: Upcaster) -> None:
    """Teach consumers to turn ``event_type`` data of ``from_version`` into ``from_version + 1``."""
    _UPCASTERS[(event_type, from_version)] = upcaster


def upcast(event_type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    current = CURRENT_VERSION.get(event_type, version)
    while version < current:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise InvalidEvent(f"no upcaster for {event_type} v{version}")
        data = step(data)
        version += 1
    return data


AnyPayload = Payload | DirectoryPayload
_SUBJECT_MISMATCH = "subject must equal data.lead_id (data.rep_id for a directory event)"


class Envelope(_Open):
    """A CloudEvents 1.0 structured-mode event as it travels on the topic.

    ``data`` is the payload as a dict when built for publishing; on a decoded event it may be the
    payload model already (see :func:`decode`): read it through :meth:`payload`."""

    specversion: Literal["1.0"] = SPECVERSION
    id: SingleLine
    source: SingleLine
    type: SingleLine
    subject: SingleLine
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    schemaversion: int = Field(default=1, ge=1)
    correlationid: OptionalSingleLine = None
    causationid: OptionalSingleLine = None
    data: dict[str, Any]

    @field_serializer("time")
    def _time_rfc3339(self, value: datetime) -> str:
        return utc_rfc3339(value)

    def payload(self) -> AnyPayload:
        """The validated payload model (upcast to the current version if needed)."""
        if isinstance(self.data, Payload):  # decoded in one pass (see :func:`decode`)
            return self.data
        return validate_payload(self.type, self.schemaversion, self.data)


def validate_payload(event_type: str, version: int, data: dict[str, Any]) -> AnyPayload:
    model = PAYLOADS.get(event_type)
    if model is None:
        raise InvalidEvent(f"unknown event type {event_type!r}")
    data = upcast(event_type, version, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid {event_type} payload: {exc}") from exc


def deterministic_event_id(*parts: object) -> str:
    """The same recorded fact always gets the same id, so a re-publication is recognisably a duplicate."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, ":".join(str(p) for p in parts)))


def make_envelope(
    payload: AnyPayload,
    *,
    service: str,
    time: datetime,
    event_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    just_built: bool = False,
) -> Envelope:
    """Wrap a payload for publishing. The payload is validated again here, as the contract requires,
    unless the caller says it is ``just_built``: made by the model's constructor (which validated it)
    and handed over untouched, so a second validation could not find anything the first did not."""
    event_type = type(payload).__name__
    if event_type not in PAYLOADS:
        raise InvalidEvent(f"{event_type} is not a registered event")
    data = payload.model_dump(mode="json")
    if not just_built:
        # Re-checks what assignment after construction may have broken (pydantic models are mutable).
        validate_payload(event_type, CURRENT_VERSION[event_type], data)
    # Validating the envelope's few attributes (``data`` is Any) costs less than model_construct.
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        source=f"/leadflow/{service}",
        type=event_type,
        subject=payload.key,
        time=time,
        schemaversion=CURRENT_VERSION[event_type],
        correlationid=correlation_id,
        causationid=causation_id,
        data=data,
    )


def encode(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope.model_dump(mode="json", exclude_none=True))


@cache
def _current_envelopes() -> TypeAdapter[Envelope]:
    """An envelope model per event type whose ``data`` is that type's payload model, picked by ``type``."""
    models = tuple(
        create_model(f"{name}Envelope", __base__=Envelope, type=(Literal[name], ...), data=(model, ...))
        for name, model in PAYLOADS.items()
    )
    return TypeAdapter(Annotated[Union[models], Field(discriminator="type")])  # noqa: UP007 (a runtime tuple)


def decode(raw: bytes) -> tuple[Envelope, AnyPayload]:
    """Parse and validate a record value; raises :class:`InvalidEvent` on anything malformed.

    A record of a known type in its current schema version is parsed and validated in one pass, and
    its envelope's ``data`` is the payload model; anything else (an older version to upcast, an
    invalid record) takes the general path, whose envelope ``data`` is the plain dict."""
    try:
        envelope = _current_envelopes().validate_json(raw)
    except ValidationError:
        return _decode_any_version(raw)
    payload = envelope.data
    if envelope.schemaversion != CURRENT_VERSION[envelope.type]:
        return _decode_any_version(raw)
    if payload.key != envelope.subject:
        raise InvalidEvent(_SUBJECT_MISMATCH)
    return envelope, payload


def _decode_any_version(raw: bytes) -> tuple[Envelope, AnyPayload]:
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as exc:
        if exc.errors()[0]["type"] in ("json_invalid", "model_type"):
            raise InvalidEvent(f"not a JSON object: {exc.errors()[0]['msg']}") from exc
        raise InvalidEvent(f"invalid CloudEvents envelope: {exc}") from exc
    payload = envelope.payload()
    if payload.key != envelope.subject:
        raise InvalidEvent(_SUBJECT_MISMATCH)
    return envelope, payload


def kafka_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    return [("ce_type", envelope.type.encode()), ("ce_id", envelope.id.encode())]
