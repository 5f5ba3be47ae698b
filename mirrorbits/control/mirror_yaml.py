"""The YAML view of a mirror used by ``show``, ``edit`` and the change diffs (spec §14.3).

The text matches what the reference prints: one ``Key: value`` line per field of the YAML
column of spec §4.1, in that order, with the reference YAML library's scalar style rules:

* a string is written plain when it would read back as the same string, and in double quotes
  when plain text would read back as something else (``""``, ``"NO"``, ``"123"``, ``"null"``);
  text that cannot be plain (``{...}``, ``a: b``, leading space) gets single quotes, and text
  with line breaks a literal block;
* float32 values use the shortest text that reads back to the same float32 (``48.8566``);
* ``AllowRedirects`` is ``null`` (server default), ``true`` or ``false``; long lines are
  never folded.

Parsing goes the other way for ``edit``: unknown keys are ignored, missing keys keep the
current value, type errors name the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs
import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    StreamEndEvent,
    StreamStartEvent,
)

from mirrorbits.float32 import f32
from mirrorbits.model import (
    REDIRECTS_ALLOWED,
    REDIRECTS_DEFAULT,
    REDIRECTS_DISALLOWED,
    Mirror,
)

EDIT_HEADER = (
    "# You can now edit this mirror configuration.\n# Just save and quit when you're done.\n"
)
COMMENT_SEPARATOR = "##### Comments go below this line #####"

_STRING, _BOOL, _INT, _UINT, _FLOAT, _REDIRECTS = "str", "bool", "int", "uint", "float", "redir"

# (YAML key, Mirror attribute, kind) in the reference's order.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("Name", "name", _STRING),
    ("HttpURL", "http_url", _STRING),
    ("RsyncURL", "rsync_url", _STRING),
    ("FtpURL", "ftp_url", _STRING),
    ("SponsorName", "sponsor_name", _STRING),
    ("SponsorURL", "sponsor_url", _STRING),
    ("SponsorLogoURL", "sponsor_logo_url", _STRING),
    ("AdminName", "admin_name", _STRING),
    ("AdminEmail", "admin_email", _STRING),
    ("CustomData", "custom_data", _STRING),
    ("ContinentOnly", "continent_only", _BOOL),
    ("CountryOnly", "country_only", _BOOL),
    ("ASOnly", "as_only", _BOOL),
    ("Score", "score", _INT),
    ("Latitude", "latitude", _FLOAT),
    ("Longitude", "longitude", _FLOAT),
    ("ContinentCode", "continent_code", _STRING),
    ("CountryCodes", "country_codes", _STRING),
    ("ExcludedCountryCodes", "excluded_country_codes", _STRING),
    ("ASNum", "asnum", _UINT),
    ("Enabled", "enabled", _BOOL),
    ("AllowRedirects", "allow_redirects", _REDIRECTS),
)

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON"})
_FALSE = frozenset({"false", "False", "FALSE", "n", "N", "no", "No", "NO", "off", "Off", "OFF"})
_SPECIAL_FLOATS = frozenset(
    f"{sign}{word}"
    for sign in ("", "+", "-")
    for word in (".inf", ".Inf", ".INF")
) | {".nan", ".NaN", ".NAN"}
_INT_RE = re.compile(r"[-+]?(?:0[bB][01]+|0[oO]?[0-7]+|0[xX][0-9a-fA-F]+|[0-9]+)\Z")
_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_BASE60_RE = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?\Z")
_TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::?[0-9]{2})?))?)?\Z"
)
_UNLIMITED_WIDTH = 2**31 - 1


class MirrorYamlError(ValueError):
    """The edited text is not a valid mirror description."""


# -- writing -------------------------------------------------------------------------------------


def mirror_yaml(mirror: Mirror) -> str:
    """The YAML block of ``show`` and ``edit`` (ends with a newline)."""
    return "".join(_field_text(key, getattr(mirror, attr), kind) for key, attr, kind in FIELDS)


def show_text(mirror: Mirror) -> str:
    """Everything ``show`` prints: the YAML, then ``Comment:`` and the comment."""
    return f"{mirror_yaml(mirror)}\nComment:\n{mirror.comment}\n"


def edit_text(mirror: Mirror) -> str:
    """The content of the temporary file handed to the editor."""
    return (
        f"{EDIT_HEADER}\n{mirror_yaml(mirror)}\n{COMMENT_SEPARATOR}\n\n{mirror.comment}\n"
    )


def yaml_diff(old: Mirror, new: Mirror) -> str:
    """``- old line`` / ``+ new line`` for every YAML field that differs (empty if none)."""
    out: list[str] = []
    for key, attr, kind in FIELDS:
        before = _field_text(key, getattr(old, attr), kind)
        after = _field_text(key, getattr(new, attr), kind)
        if before != after:
            out.extend(f"- {line}\n" for line in before.splitlines())
            out.extend(f"+ {line}\n" for line in after.splitlines())
    return "".join(out)


def _field_text(key: str, value: object, kind: str) -> str:
    if kind == _STRING:
        assert isinstance(value, str)
        return _emit_pair(key, value, _string_style(value))
    return f"{key}: {_plain_value(value, kind)}\n"


def _plain_value(value: object, kind: str) -> str:
    if kind == _BOOL:
        return "true" if value else "false"
    if kind in (_INT, _UINT):
        return str(value)
    if kind == _FLOAT:
        assert isinstance(value, float | int)
        return format_float32_g(float(value))
    if value == REDIRECTS_ALLOWED:
        return "true"
    if value == REDIRECTS_DISALLOWED:
        return "false"
    return "null"


def _string_style(text: str) -> str | None:
    """The requested scalar style: plain (``None``), literal, or double-quoted."""
    if "\n" in text:
        return "|"
    return '"' if reads_as_non_string(text) else None


def reads_as_non_string(text: str) -> bool:
    """True when ``text`` written plain would be read back as null, bool, number or date."""
    if text in _NULLS or text in _TRUE or text in _FALSE or text in _SPECIAL_FLOATS:
        return True
    if text == "<<":
        return True
    bare = text.replace("_", "")
    if _INT_RE.match(bare) or _FLOAT_RE.match(bare):
        return True
    return bool(_BASE60_RE.match(text) or _TIMESTAMP_RE.match(text))


def _emit_pair(key: str, value: str, style: str | None) -> str:
    events: list[Event] = [
        StreamStartEvent(),
        DocumentStartEvent(explicit=False),
        MappingStartEvent(anchor=None, tag=None, implicit=True, flow_style=False),
        ScalarEvent(anchor=None, tag=None, implicit=(True, True), value=key),
        ScalarEvent(anchor=None, tag=None, implicit=(True, True), value=value, style=style),
        MappingEndEvent(),
        DocumentEndEvent(explicit=False),
        StreamEndEvent(),
    ]
    text: str = yaml.emit(
        events, Dumper=yaml.SafeDumper, allow_unicode=True, width=_UNLIMITED_WIDTH
    )
    return text


def format_float32_g(value: float) -> str:
    """Shortest float32 text in the ``%g`` style (exponent form below 1e-4 and from 1e6)."""
    x = f32(value)
    if x != x:
        return ".nan"
    if x in (float("inf"), float("-inf")):
        return ".inf" if x > 0 else "-.inf"
    if x == 0:
        return "-0" if str(x).startswith("-") else "0"
    for precision in range(0, 9):
        text = f"{x:.{precision}e}"
        if f32(float(text)) == x:
            break
    mantissa, _, exponent_text = text.partition("e")
    negative = mantissa.startswith("-")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exponent = int(exponent_text)
    sign = "-" if negative else ""
    if exponent < -4 or exponent >= 6:
        fraction = f".{digits[1:]}" if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{fraction}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, fraction = digits[: exponent + 1], digits[exponent + 1 :]
    whole = whole.ljust(exponent + 1, "0")
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


# -- reading -------------------------------------------------------------------------------------


def split_edit_text(text: str) -> tuple[str, str | None]:
    """The YAML part and the comment (trimmed; ``None`` when the separator line is gone)."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.strip() == COMMENT_SEPARATOR:
            return "".join(lines[:index]), "".join(lines[index + 1 :]).strip()
    return text, None


def parse_edit_text(text: str, original: Mirror) -> Mirror:
    """The mirror described by an edited file; raises :class:`MirrorYamlError`.

    Keys that are absent keep ``original``'s values, unknown keys are ignored and a missing
    comment separator keeps the original comment.
    """
    document, comment = split_edit_text(text)
    changes = parse_mirror_yaml(document)
    if comment is not None:
        changes["comment"] = comment
    return attrs.evolve(original, **changes)


def parse_mirror_yaml(document: str) -> dict[str, Any]:
    """The Mirror attributes set by a YAML document (only the keys it contains)."""
    try:
        root = yaml.compose(document, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        raise MirrorYamlError(_describe(error)) from None
    except yaml.YAMLError as error:
        raise MirrorYamlError(f"yaml: {error}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise MirrorYamlError(
            f"yaml: line {root.start_mark.line + 1}: the mirror must be a mapping of keys"
        )
    known = {key: (attr, kind) for key, attr, kind in FIELDS}
    result: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for key_node, value_node in root.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        line = key_node.start_mark.line + 1
        if key in seen:
            raise MirrorYamlError(
                f'yaml: line {line}: mapping key "{key}" already defined at line {seen[key]}'
            )
        if key is None or key not in known:
            continue
        seen[key] = line
        attr, kind = known[key]
        result[attr] = _convert(value_node, kind, line, key)
    return result


_CONVERTERS: dict[str, Callable[[str], object]] = {}
# What a field of each kind takes, said when a value is refused (the line alone, Go's
# message, leaves the operator counting lines in the editor).
_EXPECTED = {
    _BOOL: "true or false",
    _INT: f"a whole number from {-(2**31)} to {2**31 - 1}",
    _UINT: f"a whole number from 0 to {2**32 - 1}",
    _FLOAT: "a number",
    _REDIRECTS: "true, false or null (then the configuration's DisallowRedirects decides)",
}


def _convert(node: yaml.Node, kind: str, line: int, key: str) -> object:
    if not isinstance(node, yaml.ScalarNode):
        raise MirrorYamlError(f"yaml: line {line}: cannot unmarshal a collection into {kind}")
    text: str = node.value
    plain = node.style is None
    if plain and text in _NULLS:
        return {
            _STRING: "", _BOOL: False, _INT: 0, _UINT: 0, _FLOAT: 0.0,
            _REDIRECTS: REDIRECTS_DEFAULT,
        }[kind]
    if kind == _STRING:
        return text
    try:
        return _CONVERTERS[kind](text)
    except (ValueError, OverflowError):
        raise MirrorYamlError(
            f"yaml: unmarshal errors:\n  line {line}: cannot unmarshal `{text}` into {kind} "
            f"({key} takes {_EXPECTED[kind]})"
        ) from None


def _to_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(text)


def _to_int(text: str, low: int, high: int) -> int:
    bare = text.replace("_", "")
    if not _INT_RE.match(bare):
        raise ValueError(text)
    digits = bare.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        digits = "0o" + digits[1:]
    value = int(("-" if bare.startswith("-") else "") + digits, 0)
    if not low <= value <= high:
        raise OverflowError(text)
    return value


def _to_float(text: str) -> float:
    bare = text.replace("_", "")
    if not _FLOAT_RE.match(bare):
        raise ValueError(text)
    return f32(float(bare))


def _to_redirects(text: str) -> int:
    return REDIRECTS_ALLOWED if _to_bool(text) else REDIRECTS_DISALLOWED


_CONVERTERS.update(
    {
        _BOOL: _to_bool,
        _INT: lambda text: _to_int(text, -(2**31), 2**31 - 1),
        _UINT: lambda text: _to_int(text, 0, 2**32 - 1),
        _FLOAT: _to_float,
        _REDIRECTS: _to_redirects,
    }
)


def _describe(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "invalid YAML"
    if mark is None:
        return f"yaml: {problem}"
    return f"yaml: line {mark.line + 1}: {problem}"

