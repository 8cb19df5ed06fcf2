"""Generate the event documentation for subscribing systems from the same models that validate events.

``python -m shared.schema_docs --write`` rewrites ``docs/events.schema.json`` (JSON Schema 2020-12 of the
envelope and every payload) and ``docs/events.md``; ``--check`` exits non-zero when they are stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.events import CURRENT_VERSION, DIRECTORY_PAYLOADS, PAYLOADS, Envelope
from shared.text import FREE_TEXT

DOCS = Path(__file__).resolve().parents[1] / "docs"


def json_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for name, model in PAYLOADS.items():
        schema = model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        schema["description"] = (model.__doc__ or "").strip()
        schema["x-schemaversion"] = CURRENT_VERSION[name]
        defs[name] = schema
    envelope = Envelope.model_json_schema(mode="validation")
    envelope["required"] = ["specversion", *envelope["required"]]
    envelope["properties"]["type"]["enum"] = sorted(PAYLOADS)
    envelope["allOf"] = [
        {
            "if": {"properties": {"type": {"const": name}}},
            "then": {"properties": {"data": {"$ref": f"#/$defs/{name}"}}},
        }
        for name in PAYLOADS
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:leadflow:events",
        "title": "LeadFlow lead events (CloudEvents 1.0, structured mode)",
        **{k: v for k, v in envelope.items() if k != "title"},
        "$defs": defs,
    }


def _type_of(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        return " or ".join(_type_of(p) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(prop.get('items', {}))}"
    if prop.get("format") == "date-time":
        return "RFC 3339 time"
    return str(kind)


def _free_text_fields() -> list[str]:
    """``LeadCaptured.needs``, …: the payload fields typed :data:`shared.text.FreeText`."""
    return [
        f"`{name}.{field}`"
        for name, model in PAYLOADS.items()
        for field, info in model.model_fields.items()
        if FREE_TEXT in info.metadata
    ]


ORDER = """
## What order you can rely on

- **One partition per lead.** Records are keyed by `lead_id`, and the relays' producers use Kafka's default
  partitioner: partition = murmur2(UTF-8 bytes of the `lead_id`), made positive, modulo the topic's partition
  count. Every event of a lead is in that partition, read in the order it was appended.
- **Per lead, per producing service (`source`), recording order.** A service's events of one lead appear in the
  order that service recorded them: its event store commits in notification order, one relay publishes at a
  time (a PostgreSQL lock elects it), in that order, with an idempotent producer (retries do not reorder).
  So within one `source` the order is the service's order of decisions: assignment's `LeadReleased`
  `reassigned` comes before the `LeadClaimed` it makes room for; followup's `FollowUpLogged` comes before the
  `FollowUpTaskCompleted`, `LeadStageChanged` and `LeadWon`/`LeadLost` that contact caused.
- **At least once.** After a relay crash, or when another replica takes over publishing, a run of events
  already published may be published again, later in the partition, with the same `id`. Keep the first copy
  of each `id`: what remains is in recording order (per lead, per source).
- **`time` is when it happened**, by the producing service's clock: a command's time, or, for an event a
  service records because it consumed another one, that event's time (followup's `new` → `assigned` carries
  its `LeadClaimed`'s `time`).

What you cannot rely on:

- **Order across producing services.** A lead's events from different services interleave in the order their
  relays happened to publish them, not in the order things happened: followup's `new` → `assigned`
  (dated at the claim) may come after assignment's later `LeadReleased`; a `FollowUpLogged` that followup
  accepted just before it consumed a release comes after that `LeadReleased`.
- **`time` never going back in topic order**, even within one source: an event mirroring an upstream one
  carries the upstream time, and two commands racing on one lead are recorded in the order they got the lead,
  each with the time it was asked (milliseconds apart). Nor order across leads (other partitions).
- **Seeing an event as soon as the command that recorded it answered.** Relays publish from the outbox
  tens of milliseconds later (LeadFlow's own services wait for it, bounded, where it matters; a subscriber
  that must not miss a lead's next event reads on).

To rebuild a history, order a lead's events by `time`, and events of the same `time` in topic order (within one
source, recording order). The stage of a lead, as assignment (which owns it) and analytics' 360 view keep it:
`LeadCaptured` → `new`; `LeadClaimed` → `assigned` (from `new`); `LeadReleased` → `new`; followup's
`LeadStageChanged` (and the stage of a `FollowUpLogged`) moves it forward only when it was made in the current
ownership (`rep_id` is the current owner, `time` at or after the claim); a move by a former owner that crossed
a release on its way counts for nothing, and followup returns to `new` itself when it consumes that release;
`LeadWon` / `LeadLost` close it whoever recorded them (`won` and `lost` are final).
"""


def markdown(schema: dict[str, Any]) -> str:
    lines = [
        "# LeadFlow events",
        "",
        "<!-- Generated by `python -m shared.schema_docs --write` from shared/events.py; do not edit. -->",
        "",
        "Topic `leadflow.lead-events` (override `LEADFLOW_TOPIC`), keyed by `lead_id`, retained forever.",
        "Each record value is a CloudEvents 1.0 structured-mode JSON object; the header `ce_type` carries the",
        "event name (and `ce_id` its id). Consumers de-duplicate on `id`: a re-published event keeps its id.",
        "Payloads may gain optional fields at any time (ignore what you do not know); a breaking change bumps",
        "`schemaversion`. The machine-readable schema is `docs/events.schema.json`.",
        *ORDER.splitlines(),
        "",
        "The people directory's events (" + ", ".join(f"`{name}`" for name in DIRECTORY_PAYLOADS) + ") travel on",
        "the same topic keyed by the person's `rep_id` (their username): their `subject` and key are the `rep_id`,",
        "and their `data` has no `lead_id`. A consumer of lead events filters them out by the `ce_type` header.",
        "",
        "No string of an event (added fields and their names included) carries NUL or another control character",
        "(C0, DEL, C1), a lone surrogate, or a bidi embedding, override or isolate (U+202A–U+202E, U+2066–U+2069);",
        f"tab, line feed and CR LF appear only in free text ({', '.join(_free_text_fields())}). LeadFlow never",
        "publishes such a record, and its consumers refuse one as invalid (see `shared/text.py`).",
        "",
        "## Envelope",
        "",
        "| attribute | type | required |",
        "|---|---|---|",
    ]
    required = set(schema.get("required", []))
    for name, prop in schema["properties"].items():
        lines.append(f"| `{name}` | {_type_of(prop)} | {'yes' if name in required else 'no'} |")
    for name in PAYLOADS:
        model = schema["$defs"][name]
        req = set(model.get("required", []))
        lines += ["", f"## {name} (schemaversion {model['x-schemaversion']})", "", model["description"], ""]
        lines += ["| field | type | required |", "|---|---|---|"]
        for field, prop in model["properties"].items():
            lines.append(f"| `{field}` | {_type_of(prop)} | {'yes' if field in req else 'no'} |")
    return "\n".join(lines) + "\n"


def rendered() -> dict[Path, str]:
    schema = json_schema()
    return {
        DOCS / "events.schema.json": json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
        DOCS / "events.md": markdown(schema),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the generated files")
    parser.add_argument("--check", action="store_true", help="fail if the generated files are stale")
    args = parser.parse_args()
    stale = [path for path, text in rendered().items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.write:
        DOCS.mkdir(exist_ok=True)
        for path, text in rendered().items():
            path.write_text(text, encoding="utf-8")
        print("wrote", ", ".join(str(p.relative_to(DOCS.parent)) for p in rendered()))
    elif stale:
        print("stale:", ", ".join(str(p) for p in stale), "- run: make docs", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
