"""The event contract: envelopes round-trip, bad events are refused, old versions are upcast."""

from datetime import UTC, datetime

import orjson
import pytest

from shared import events as ev
from shared.events import (
    InvalidEvent,
    LeadClaimed,
    LeadReleased,
    decode,
    deterministic_event_id,
    encode,
    kafka_headers,
    make_envelope,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def claimed() -> LeadClaimed:
    return LeadClaimed(lead_id="lead-1", rep_id="rep-7", how="claim", protected_until=NOW)


def test_round_trip_keeps_every_attribute():
    envelope = make_envelope(claimed(), service="assignment", time=NOW, correlation_id="req-1", causation_id="evt-0")
    back, payload = decode(encode(envelope))
    assert back.model_dump(mode="json") == envelope.model_dump(mode="json")
    assert back.payload() is payload
    assert isinstance(payload, LeadClaimed)
    assert payload.rep_id == "rep-7" and payload.protected_until == NOW


def test_structured_mode_attributes_follow_cloudevents():
    raw = orjson.loads(encode(make_envelope(claimed(), service="assignment", time=NOW)))
    assert raw["specversion"] == "1.0"
    assert raw["source"] == "/leadflow/assignment"
    assert raw["type"] == "LeadClaimed"
    assert raw["subject"] == "lead-1"
    assert raw["time"] == "2026-11-23T10:00:00Z"
    assert raw["datacontenttype"] == "application/json"
    assert raw["schemaversion"] == 1
    assert raw["data"]["protected_until"] == "2026-11-23T10:00:00Z"


def test_header_names_the_type():
    envelope = make_envelope(claimed(), service="assignment", time=NOW)
    assert ("ce_type", b"LeadClaimed") in kafka_headers(envelope)


def test_invalid_payload_is_refused_on_produce():
    with pytest.raises(ValueError):
        LeadReleased(lead_id="l", rep_id="r", reason="bored", cooldown_until=NOW)


def test_a_payload_changed_after_construction_is_refused_on_produce():
    payload = claimed()
    payload.how = "stolen"  # type: ignore[assignment]
    with pytest.raises(InvalidEvent, match="invalid LeadClaimed payload"):
        make_envelope(payload, service="assignment", time=NOW)


def test_a_just_built_payload_is_not_validated_twice():
    envelope = make_envelope(claimed(), service="assignment", time=NOW, just_built=True)
    assert envelope == make_envelope(claimed(), service="assignment", time=NOW).model_copy(update={"id": envelope.id})


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e.update(data={**e["data"], "how": "stolen"}), "invalid LeadClaimed payload"),
        (lambda e: e.update(type="LeadTeleported"), "unknown event type"),
        (lambda e: e.pop("id"), "invalid CloudEvents envelope"),
        (lambda e: e.update(specversion="0.3"), "invalid CloudEvents envelope"),
        (lambda e: e.update(subject="other-lead"), "subject must equal"),
    ],
)
def test_invalid_events_are_refused_on_consume(mutate, message):
    raw = orjson.loads(encode(make_envelope(claimed(), service="assignment", time=NOW)))
    mutate(raw)
    with pytest.raises(InvalidEvent, match=message):
        decode(orjson.dumps(raw))


def test_garbage_is_refused():
    with pytest.raises(InvalidEvent):
        decode(b"\x00not json")
    with pytest.raises(InvalidEvent):
        decode(b"[1, 2]")


def test_extra_fields_are_kept_for_forward_compatibility():
    raw = orjson.loads(encode(make_envelope(claimed(), service="assignment", time=NOW)))
    raw["data"]["team"] = "east"
    raw["traceparent"] = "00-abc"
    envelope, payload = decode(orjson.dumps(raw))
    assert payload.model_extra == {"team": "east"}
    assert envelope.model_extra == {"traceparent": "00-abc"}


def test_old_schema_versions_are_upcast(monkeypatch):
    # Pretend LeadReleased v2 renamed "why" (v1) to "reason"; a v1 record on the topic still reads.
    monkeypatch.setitem(ev.CURRENT_VERSION, "LeadReleased", 2)
    monkeypatch.setattr(ev, "_UPCASTERS", {})
    ev.register_upcaster("LeadReleased", 1, lambda d: {**{k: v for k, v in d.items() if k != "why"}, "reason": d.pop("why")})
    raw = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/leadflow/assignment",
        "type": "LeadReleased",
        "subject": "l1",
        "time": "2026-11-23T10:00:00Z",
        "schemaversion": 1,
        "data": {"lead_id": "l1", "rep_id": "r1", "why": "manual", "cooldown_until": "2026-11-30T10:00:00Z"},
    }
    _, payload = decode(orjson.dumps(raw))
    assert payload.reason == "manual"


def test_missing_upcaster_is_an_error(monkeypatch):
    monkeypatch.setitem(ev.CURRENT_VERSION, "LeadClaimed", 3)
    monkeypatch.setattr(ev, "_UPCASTERS", {})
    raw = orjson.loads(encode(make_envelope(claimed(), service="assignment", time=NOW)))
    raw["schemaversion"] = 1
    with pytest.raises(InvalidEvent, match="no upcaster"):
        decode(orjson.dumps(raw))


def test_deterministic_ids_repeat_for_the_same_fact_only():
    assert deterministic_event_id("intake", "l1", 1) == deterministic_event_id("intake", "l1", 1)
    assert deterministic_event_id("intake", "l1", 1) != deterministic_event_id("intake", "l1", 2)


def test_generated_event_docs_are_current():
    from shared.schema_docs import rendered

    stale = [str(path) for path, text in rendered().items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"regenerate with `make docs`: {stale}"


def test_published_schema_validates_a_real_event():
    from shared.schema_docs import json_schema

    schema = json_schema()
    raw = orjson.loads(encode(make_envelope(claimed(), service="assignment", time=NOW)))
    assert set(schema["required"]) <= set(raw)
    data_schema = schema["$defs"]["LeadClaimed"]
    assert set(data_schema["required"]) <= set(raw["data"])
