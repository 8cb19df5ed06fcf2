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


def captured_record(**data: object) -> dict:
    payload = ev.LeadCaptured(
        lead_id="lead-1", name="李四", phone="+8613800138000", source="web_form", score=40, grade="B", captured_by="crm"
    )
    raw = orjson.loads(encode(make_envelope(payload, service="intake", time=NOW)))
    raw["data"].update(data)
    return raw


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e["data"].update(name="李\x00四"),
        lambda e: e["data"].update(company="\u202eACME"),
        lambda e: e["data"].update(tags=["vip", "x\x1b[2J"]),
        lambda e: e["data"].update(contacts=[{"name": "王\x85五", "role": "user"}]),
        lambda e: e["data"].update(contacts=[{"name": "王五", "role": "user", "note": "\u2067"}]),
        lambda e: e["data"].update(needs="fine\nbut \x07 rings"),
        lambda e: e["data"].update(score_reasons=[{"rule": "industry", "matched": "\u2066x"}]),
        lambda e: e["data"].update(region="华东\n"),  # a single-line field
        lambda e: e["data"].update(added_later={"nested": ["\x00"]}),  # a field this consumer does not know
        lambda e: e["data"].update({"added\x00name": 1}),
        lambda e: e.update(correlationid="req\x9b1"),
        lambda e: e.update(traceparent="00-\x00"),  # a CloudEvents extension attribute
    ],
)
def test_text_no_edge_would_accept_fails_the_contract_on_consume(mutate):
    """A foreign producer writing straight to the topic cannot make a consumer record what the API refuses."""
    raw = captured_record()
    mutate(raw)
    with pytest.raises(InvalidEvent):
        decode(orjson.dumps(raw))


def test_free_text_fields_of_an_event_keep_their_line_breaks():
    _, payload = decode(orjson.dumps(captured_record(needs="MES 一期\r\n\t二期", added_note="two\nlines")))
    assert payload.needs == "MES 一期\r\n\t二期" and payload.model_extra == {"added_note": "two\nlines"}


def test_text_no_edge_would_accept_is_refused_on_produce():
    with pytest.raises(ValueError, match="U\\+0000"):
        LeadClaimed(lead_id="lead-1", rep_id="eco\x00rep", how="assign", protected_until=NOW)


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


def test_a_directory_event_is_keyed_by_the_person_and_round_trips():
    from shared.events import LEAD_EVENT_TYPES, RepJoined, TeamChanged

    envelope = make_envelope(TeamChanged(rep_id="li.lei", team="east", manager="mgr-east"), service="console", time=NOW)
    assert envelope.subject == "li.lei"
    _, payload = decode(encode(envelope))
    assert isinstance(payload, TeamChanged) and payload.key == "li.lei" and not hasattr(payload, "lead_id")
    assert "RepJoined" not in LEAD_EVENT_TYPES and "LeadCaptured" in LEAD_EVENT_TYPES
    forged = encode(envelope).replace(b'"subject":"li.lei"', b'"subject":"someone-else"')
    with pytest.raises(InvalidEvent, match="subject"):
        decode(forged)
    with pytest.raises(InvalidEvent):
        decode(
            encode(make_envelope(RepJoined(rep_id="x", display_name="X", role="rep"), service="c", time=NOW)).replace(
                b'"role":"rep"', b'"role":"boss"'
            )
        )
