"""Text from outside, checked at every edge: HTTP bodies, query and path values, CSV cells, token claims, events.

Two flavours of one rule. :data:`SingleLine` (names, ids, filters, tags) and :data:`FreeText` (summaries, needs,
notes) both refuse what is not text, or is text that misleads whoever reads it later:

- NUL and every other control character: C0 (U+0000–U+001F), DEL (U+007F) and C1 (U+0080–U+009F);
  free text may carry tab (U+0009), line feed (U+000A) and a carriage return that ends a line (CR LF);
- lone surrogates (U+D800–U+DFFF), which are not characters and cannot be encoded as UTF-8;
- bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which make text display
  in another order than it is stored ("Trojan Source").

The bidi *marks* (LRM U+200E, RLM U+200F, ALM U+061C) are accepted: they open no embedding level, so they
cannot reorder a run of text (they only settle the direction of the neutral characters beside them), and
genuine right-to-left names and addresses pasted from other software carry them.

The types are ``Annotated[str, AfterValidator(...)]``, so FastAPI and OpenAPI treat them as ``str`` and a
refusal becomes an ordinary validation error at the field (422 problem+json, ``errors: [{field, message}]``).
Code that validates without pydantic (a token's claims, a header) asks :func:`text_error`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

_BIDI = "\u202a-\u202e\u2066-\u2069"
_NOT_TEXT = "\ud800-\udfff"
_FORBIDDEN_IN_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_NOT_TEXT}]")
_FORBIDDEN_IN_FREE_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}{_NOT_TEXT}]|\r(?!\n)")


def text_error(value: str, *, free_text: bool = False) -> str | None:
    """Why ``value`` may not enter LeadFlow, for the person who sent it; None when it is clean."""
    # isprintable() is True for almost every value (plain ASCII, Chinese, most emoji) and is a C loop
    # without the regex machinery; anything it doubts (tabs, ZWJ emoji sequences, …) gets the exact check.
    if value.isprintable():
        return None
    found = (_FORBIDDEN_IN_FREE_TEXT if free_text else _FORBIDDEN_IN_LINE).search(value)
    if found is None:
        return None
    char = found.group()[0]
    where = f"(U+{ord(char):04X}) at character {found.start() + 1}"
    if char in "\t\n\r" and not free_text:
        return f"contains a tab or line break {where}: this field is a single line"
    if char == "\r":
        return f"contains a carriage return {where} that does not end a line (CR LF)"
    if "\ud800" <= char <= "\udfff":
        return f"contains a lone surrogate {where}, which is not a character"
    if char >= "\u202a":
        return f"contains a bidirectional override, embedding or isolate {where}"
    return f"contains a control character {where}"


# These run for every text field of every request and every consumed event: the common case (clean,
# printable text) returns without a further call.
def _single_line(value: str | None) -> str | None:
    if value is None or value.isprintable() or (error := text_error(value)) is None:
        return value
    raise PydanticCustomError("text_character", error)


def _free_text(value: str | None) -> str | None:
    if value is None or value.isprintable() or (error := text_error(value, free_text=True)) is None:
        return value
    raise PydanticCustomError("text_character", error)


def _json_value(value: Any) -> Any:
    """Every string in a JSON value, keys included, as free text (its schema is not known here)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            _free_text(item)
        elif isinstance(item, dict):
            for key, member in item.items():
                _single_line(key)
                pending.append(member)
        elif isinstance(item, list):
            pending.extend(item)
    return value


# The checks themselves, for an ``Annotated`` that also carries constraints: put them last, as in
# ``Annotated[str, Query(max_length=200), SINGLE_LINE]``. pydantic applies a constraint that comes after
# a validator to the validator's result, not to the string: its error then speaks of "items", and a
# ``pattern`` drops out of the JSON Schema. (``x: SingleLine = Field(max_length=…)`` is fine.)
SINGLE_LINE = AfterValidator(_single_line)
FREE_TEXT = AfterValidator(_free_text)

SingleLine = Annotated[str, SINGLE_LINE]
"""Text on one line: no control characters at all (not even tab or newline), no bidi overrides, no lone surrogates."""

FreeText = Annotated[str, FREE_TEXT]
"""Prose: as :data:`SingleLine`, but tab, newline and CR LF are allowed."""

# For optional fields, in place of ``SingleLine | None`` (a constraint would come after the check, see above).
OptionalSingleLine = Annotated[str | None, SINGLE_LINE]
OptionalFreeText = Annotated[str | None, FREE_TEXT]

CleanJson = Annotated[Any, AfterValidator(_json_value)]
"""Any JSON value whose strings are clean :data:`FreeText` and whose keys are :data:`SingleLine` (for fields a
contract leaves open, e.g. the extra members producers may add to an event)."""
