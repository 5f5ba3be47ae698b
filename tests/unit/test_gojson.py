"""Go ``encoding/json``-compatible output, checked against bodies the reference served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirrorbits.gojson import F32, dumps, format_f64, quote

BODIES = Path(__file__).parent.parent / "fixtures" / "reference_json"


def _load_as_go_document(body: str) -> Any:
    """The reference's document with every non-integer number typed as a float32."""
    return json.loads(body, parse_float=F32)


@pytest.mark.parametrize(
    "name",
    [
        "montreal-announce.compact.json",
        "montreal-nonascii-fallback.compact.json",
        "asnknown-empty.compact.json",
    ],
)
def test_compact_bodies_are_byte_identical(name: str) -> None:
    body = (BODIES / name).read_bytes()
    assert body.endswith(b"}\n")  # json.Encoder's newline, added by the caller
    assert dumps(_load_as_go_document(body.decode("utf-8"))) + b"\n" == body


@pytest.mark.parametrize("name", ["pretty.pretty.json", "stats.pretty.json"])
def test_pretty_bodies_are_byte_identical(name: str) -> None:
    body = (BODIES / name).read_bytes()
    assert dumps(_load_as_go_document(body.decode("utf-8")), pretty=True) == body


def test_reference_body_details() -> None:
    body = (BODIES / "montreal-announce.compact.json").read_bytes()
    doc = _load_as_go_document(body.decode("utf-8"))
    assert doc["ClientInfo"]["City"] == "Montréal"
    assert "Montréal".encode() in body  # non-ASCII stays raw UTF-8
    assert rb'"CustomData":"{\"tier\": 1, \"note\": \"\u003cprimary\u003e \u0026 fast\"}"' in body
    assert b'"Distance":504.26236' in body


def test_string_escapes() -> None:
    assert quote("plain ascii/text") == '"plain ascii/text"'
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote("<a href='x'>&</a>") == '"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e"'
    assert quote("l1\nl2\r\tend") == '"l1\\nl2\\r\\tend"'
    assert quote("\x00\x01\x08\x0c\x1f\x7f") == '"\\u0000\\u0001\\u0008\\u000c\\u001f\x7f"'
    assert quote("\u2028\u2029é€😀") == '"\\u2028\\u2029é€😀"'
    assert quote("gu\udcc3\udcada") == '"gu\\ufffd\\ufffda"'  # undecodable bytes


def test_scalars() -> None:
    assert dumps([True, False, None, 0, -5, 2**64, "", F32(0.0), F32(-74.006)]) == (
        b'[true,false,null,0,-5,18446744073709551616,"",0,-74.006]'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (0.1, "0.1"),
        (2.5e-6, "0.0000025"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (123456789.0, "123456789"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (392.14078, "392.14078"),
    ],
)
def test_float64(value: float, text: str) -> None:
    assert format_f64(value) == text
    assert dumps(value) == text.encode()


def test_float32_differs_from_float64() -> None:
    assert dumps([F32(48.8566), 48.8566, F32(0.1)]) == b"[48.8566,48.8566,0.1]"
    assert dumps(F32(1e6)) == b"1000000"
    assert dumps(F32(1 / 3)) == b"0.33333334"
    assert dumps(1 / 3) == b"0.3333333333333333"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), F32(float("-inf"))])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        dumps({"x": bad})


def test_unsupported_types_are_refused() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})
    with pytest.raises(TypeError):
        dumps({1: "x"})


def test_pretty_layout() -> None:
    doc = {"a": 1, "b": [], "c": {}, "d": [1, {"e": None}], "f": {"g": [[]]}}
    assert dumps(doc, pretty=True).decode() == (
        "{\n"
        '    "a": 1,\n'
        '    "b": [],\n'
        '    "c": {},\n'
        '    "d": [\n'
        "        1,\n"
        "        {\n"
        '            "e": null\n'
        "        }\n"
        "    ],\n"
        '    "f": {\n'
        '        "g": [\n'
        "            []\n"
        "        ]\n"
        "    }\n"
        "}"
    )
    assert dumps([], pretty=True) == b"[]"
    assert dumps("x", pretty=True) == b'"x"'


def test_compact_layout_keeps_insertion_order() -> None:
    assert dumps({"z": 1, "a": [1, 2, {}], "m": {"x": []}}) == b'{"z":1,"a":[1,2,{}],"m":{"x":[]}}'
    assert dumps((1, 2)) == b"[1,2]"


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(codec="utf-8")), inner, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_output_is_valid_json_with_the_same_values(doc: Any) -> None:
    for pretty in (False, True):
        assert _same(json.loads(dumps(doc, pretty=pretty)), doc)


def _same(decoded: Any, original: Any) -> bool:
    """Equal values; Go prints integral floats without a point, lone surrogates as U+FFFD."""
    if isinstance(original, str):
        fixed = "".join("\ufffd" if 0xD800 <= ord(c) < 0xE000 else c for c in original)
        return bool(decoded == fixed)
    if isinstance(original, float):
        return isinstance(decoded, int | float) and float(decoded) == original
    if isinstance(original, list):
        return len(decoded) == len(original) and all(map(_same, decoded, original))
    if isinstance(original, dict):
        return list(decoded) == [_same_key(k) for k in original] and all(
            _same(decoded[_same_key(k)], v) for k, v in original.items()
        )
    return bool(decoded == original) and type(decoded) is type(original)


def _same_key(key: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) < 0xE000 else c for c in key)
