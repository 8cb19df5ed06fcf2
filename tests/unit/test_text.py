"""The one text rule of every edge: what SingleLine and FreeText refuse, what they let through, and how they say so."""

import json
from typing import Annotated

import pytest
from fastapi import FastAPI, Path, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shared.problems import install_problem_handlers
from shared.text import (
    SINGLE_LINE,
    CleanJson,
    FreeText,
    OptionalFreeText,
    OptionalSingleLine,
    SingleLine,
    text_error,
)

line = TypeAdapter(SingleLine)
free = TypeAdapter(FreeText)

LONE_SURROGATE = json.loads('"abc\\ud800"')  # how it arrives: a JSON escape, which json.loads lets through
REFUSED_EVERYWHERE = {
    "NUL": ("a\x00b", "U+0000", "control character"),
    "escape (C0)": ("\x1b[31mred", "U+001B", "control character"),
    "vertical tab": ("a\x0bb", "U+000B", "control character"),
    "DEL": ("a\x7f", "U+007F", "control character"),
    "next line (C1)": ("a\x85b", "U+0085", "control character"),
    "C1 CSI": ("\x9b", "U+009B", "control character"),
    "lone surrogate": (LONE_SURROGATE, "U+D800", "lone surrogate"),
    "left-to-right embedding": ("\u202aabc", "U+202A", "bidirectional"),
    "right-to-left override": ("invoice\u202efdp.exe", "U+202E", "bidirectional"),
    "pop directional formatting": ("x\u202c", "U+202C", "bidirectional"),
    "left-to-right isolate": ("\u2066x", "U+2066", "bidirectional"),
    "pop directional isolate": ("x\u2069", "U+2069", "bidirectional"),
}
CLEAN = {
    "plain": "Acme Trading Co., Ltd.",
    "Chinese": "上海市浦东新区张江高科技园区 李四",
    "full-width": "ＡＢＣ１２３　（株）",
    "emoji": "👍🏽 great call 🎉",
    "emoji ZWJ sequence": "👨‍👩‍👧 family plan",
    "flag": "🇨🇳",
    "bidi marks": "שלום\u200e 123 \u200fمرحبا\u061c",
    "no-break space": "100\u00a0万",
    "empty": "",
}


@pytest.mark.parametrize("value, code, what", REFUSED_EVERYWHERE.values(), ids=REFUSED_EVERYWHERE.keys())
@pytest.mark.parametrize("adapter", [line, free], ids=["single line", "free text"])
def test_what_no_text_may_carry(adapter, value, code, what):
    with pytest.raises(ValidationError) as refused:
        adapter.validate_python(value)
    (error,) = refused.value.errors()
    assert error["type"] == "text_character"
    assert code in error["msg"] and what in error["msg"]


@pytest.mark.parametrize("value", CLEAN.values(), ids=CLEAN.keys())
def test_real_text_passes_unchanged(value):
    assert line.validate_python(value) == value
    assert free.validate_python(value) == value


@pytest.mark.parametrize("value", ["line one\nline two", "a\tb", "Windows\r\nline ends\r\n", "\n"])
def test_tab_and_line_breaks_only_in_free_text(value):
    assert free.validate_python(value) == value
    with pytest.raises(ValidationError, match="single line"):
        line.validate_python(value)


def test_a_carriage_return_that_ends_no_line_is_refused_in_free_text_too():
    for value in ("over\rwritten", "trailing\r"):
        with pytest.raises(ValidationError, match="carriage return"):
            free.validate_python(value)


def test_the_message_says_where():
    assert text_error("ab\x00") == "contains a control character (U+0000) at character 3"
    assert text_error("李四\n", free_text=True) is None
    assert text_error("李四\n") == "contains a tab or line break (U+000A) at character 3: this field is a single line"


def test_a_lone_surrogate_in_a_json_body_is_named_by_field():
    class Body(BaseModel):
        name: SingleLine

    with pytest.raises(ValidationError) as refused:
        Body.model_validate(json.loads('{"name": "\\ud800"}'))
    assert refused.value.errors()[0]["loc"] == ("name",)
    assert Body.model_validate(json.loads('{"name": "\\ud83d\\ude00"}')).name == "😀"  # a pair is one character


class Profile(BaseModel):
    title: SingleLine = Field(max_length=5)
    notes: OptionalFreeText = Field(default=None, max_length=5)
    team: OptionalSingleLine = Field(default=None, max_length=5)
    code: Annotated[str, Field(max_length=5, pattern=r"^\S+$"), SINGLE_LINE] = "x"
    tags: list[SingleLine] = Field(default_factory=list)


@pytest.mark.parametrize("field", ["title", "notes", "team", "code"])
def test_constraints_keep_their_own_messages(field):
    with pytest.raises(ValidationError) as refused:
        Profile.model_validate({"title": "t", field: "toolong"})
    assert [e["msg"] for e in refused.value.errors()] == ["String should have at most 5 characters"]
    with pytest.raises(ValidationError, match="U\\+0000"):
        Profile.model_validate({"title": "t", field: "a\x00"})


def test_optional_fields_take_none_and_lists_are_checked_item_by_item():
    assert Profile(title="t").notes is None
    with pytest.raises(ValidationError) as refused:
        Profile(title="t", tags=["ok", "b\u202e"])
    assert refused.value.errors()[0]["loc"] == ("tags", 1)


def test_the_json_schema_still_says_string_with_its_constraints():
    schema = Profile.model_json_schema()["properties"]
    assert schema["title"] == {"maxLength": 5, "title": "Title", "type": "string"}
    assert schema["code"]["pattern"] == r"^\S+$"


def test_an_open_json_value_is_checked_through_keys_and_nesting():
    adapter = TypeAdapter(CleanJson)
    clean = {"rule": "industry", "matched": ["制造", {"note": "two\nlines"}], "points": 10, "ok": None}
    assert adapter.validate_python(clean) == clean
    for bad in ({"matched": ["x", {"deep": "\x00"}]}, {"k\x00": 1}, ["\u2067"]):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


def test_fastapi_names_the_path_and_query_value_it_refuses():
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/reps/{rep_id}")
    def rep(
        rep_id: Annotated[str, Path(max_length=10), SINGLE_LINE],
        region: Annotated[OptionalSingleLine, Query(max_length=10)] = None,
    ) -> dict:
        return {"rep_id": rep_id, "region": region}

    client = TestClient(app)
    assert client.get("/reps/rep-1", params={"region": "华东"}).json() == {"rep_id": "rep-1", "region": "华东"}
    for url, field in [("/reps/a%00b", "rep_id"), ("/reps/r?region=%E2%80%AE", "region"), ("/reps/r?region=a%09b", "region")]:
        response = client.get(url)
        assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
