"""A JSON serializer whose output is byte-identical to Go's ``encoding/json`` (Go 1.19).

Documents are built from ``dict`` (insertion order is kept, like a Go struct's field order; keys
must be ``str``), ``list``/``tuple``, ``str``, ``bool``, ``int``, ``None``, :class:`F32` (a
``float32`` value) and ``float`` (a ``float64``). Go conventions:

* strings: ``<``, ``>``, ``&``, U+2028 and U+2029 as ``\\u003c``-style escapes; ``\\n``, ``\\r``,
  ``\\t``, ``\\"``, ``\\\\``; other control characters as ``\\u00XX`` (lower-case hex); other
  characters raw (UTF-8); lone surrogates (undecodable bytes) as ``\\ufffd``;
* floats: shortest round-trip digits for their width, plain decimals for ``1e-6 <= |x| < 1e21``
  and ``1e-7``/``1e+21`` exponent forms otherwise; NaN and infinities raise ``ValueError``.

:func:`dumps` adds no trailing newline: callers that mimic ``json.Encoder`` add ``b"\\n"``.
"""

from __future__ import annotations

import re
from typing import Any

from mirrorbits.float32 import format_f32, json_text, parse_digits

__all__ = ["F32", "dumps"]

_INDENT = "    "
_INF = float("inf")


class F32(float):
    """A float printed as Go prints a ``float32`` (``F32(48.8566)`` -> ``48.8566``)."""

    __slots__ = ()


_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update({
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
})
_ESCAPES.update({c: "\\ufffd" for c in range(0xD800, 0xE000)})


def quote(text: str) -> str:
    """A JSON string literal, escaped as Go does."""
    if _NEEDS_ESCAPE.search(text) is None:
        return '"' + text + '"'
    return '"' + text.translate(_ESCAPES) + '"'


def format_f64(value: float) -> str:
    """Go JSON text of a float64 (``0.5``, ``100``, ``1e-7``, ``1e+21``)."""
    text = float.__repr__(value)
    if "e" not in text:  # Python already writes plain decimals for 1e-4 <= |x| < 1e16
        if text.endswith(".0"):
            return text[:-2]
        if text[-1].isdigit():
            return text
    if value != value or value in (_INF, -_INF):
        raise ValueError(f"unsupported JSON value: {value!r}")
    neg = text.startswith("-")
    return json_text(neg, *parse_digits(text.lstrip("-")))


def dumps(obj: Any, pretty: bool = False) -> bytes:
    """UTF-8 JSON of ``obj``: compact like ``json.Marshal``, or ``pretty`` like
    ``json.MarshalIndent(obj, "", "    ")``."""
    out: list[str] = []
    if pretty:
        _encode_pretty(obj, out, "\n")
    else:
        _encode(obj, out)
    return "".join(out).encode("utf-8")


def _true_false(value: bool) -> str:
    return "true" if value else "false"


def _null(_value: None) -> str:
    return "null"


_SCALARS: dict[type, Any] = {
    str: quote,
    int: int.__repr__,
    bool: _true_false,
    type(None): _null,
    F32: format_f32,
    float: format_f64,
}
_KEYS: dict[str, str] = {}
_KEYS_MAX = 4096


def _scalar(obj: Any) -> str | None:
    """The text of a scalar value, ``None`` for containers."""
    write = _SCALARS.get(type(obj))
    if write is not None:
        text: str = write(obj)
        return text
    if isinstance(obj, bool):
        return _true_false(obj)
    if isinstance(obj, F32):
        return format_f32(obj)
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        return format_f64(obj)
    if isinstance(obj, str):
        return quote(str(obj))
    if isinstance(obj, dict | list | tuple):
        return None
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def _key(key: Any) -> str:
    """A quoted object key (memoised: documents reuse the same few keys)."""
    text = _KEYS.get(key)
    if text is None:
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
        text = quote(key)
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[key] = text
    return text


def _encode(obj: Any, out: list[str]) -> None:
    text = _scalar(obj)
    if text is not None:
        out.append(text)
        return
    append = out.append
    scalars = _SCALARS
    needs_escape = _NEEDS_ESCAPE.search
    known_key = _KEYS.get
    if isinstance(obj, dict):
        sep = "{"
        for key, value in obj.items():
            quoted = known_key(key) or _key(key)
            kind = type(value)
            if kind is str and needs_escape(value) is None:  # the common case, inlined
                append(sep + quoted + ':"' + value + '"')
            else:
                write = scalars.get(kind)
                if write is not None:
                    append(sep + quoted + ":" + write(value))
                else:
                    append(sep + quoted + ":")
                    _encode(value, out)
            sep = ","
        append("}" if sep == "," else "{}")
        return
    sep = "["
    for item in obj:
        write = scalars.get(type(item))
        if write is not None:
            append(sep + write(item))
        else:
            append(sep)
            _encode(item, out)
        sep = ","
    append("]" if sep == "," else "[]")


def _encode_pretty(obj: Any, out: list[str], newline: str) -> None:
    """Like :func:`_encode`; ``newline`` is ``"\\n"`` plus the current indentation."""
    text = _scalar(obj)
    if text is not None:
        out.append(text)
        return
    inner = newline + _INDENT
    if isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        sep = "{" + inner
        for key, value in obj.items():
            out.append(sep + _key(key) + ": ")
            sep = "," + inner
            _encode_pretty(value, out, inner)
        out.append(newline + "}")
        return
    if not obj:
        out.append("[]")
        return
    sep = "[" + inner
    for item in obj:
        out.append(sep)
        sep = "," + inner
        _encode_pretty(item, out, inner)
    out.append(newline + "]")
