"""Entries of the per-mirror event log ``MIRRORLOGS_<id>`` (spec §13).

Each entry is the JSON text of one event, as the reference RPUSHes it: keys ``Type``,
``MirrorID``, ``Timestamp`` (RFC 3339 with nanoseconds, always rendered in UTC here), then the
fields of the event type. :func:`render_event` turns an entry back into the ``logs`` text.
"""

from __future__ import annotations

import enum
import json
from typing import Final, Literal, TypeVar

from mirrorbits.encoding import (
    format_go_duration,
    format_log_time,
    format_rfc3339_nano,
    parse_rfc3339,
)
from mirrorbits.gojson import dumps

TYPE_ERROR = 1
TYPE_ADDED = 2
TYPE_EDITED = 3
TYPE_ENABLED = 4
TYPE_DISABLED = 5
TYPE_STATE_CHANGED = 6
TYPE_SCAN_STARTED = 7
TYPE_SCAN_COMPLETED = 8

# Values of ``Proto`` in a STATECHANGED event.
PROTO_UNDEFINED = 0
PROTO_HTTP = 1
PROTO_HTTPS = 2

# Values of ``Typ`` in a SCANSTARTED event (the scanner used).
SCANNER_RSYNC = 0
SCANNER_FTP = 1
SCANNER_HTTP = 2  # index pages (the reference has no such scanner)

_FIXED_TEXT = {
    TYPE_ADDED: "Mirror added",
    TYPE_EDITED: "Mirror edited",
    TYPE_ENABLED: "Mirror enabled",
    TYPE_DISABLED: "Mirror disabled",
}
_PROTO_SUBJECT = {PROTO_UNDEFINED: "Mirror", PROTO_HTTP: "HTTP mirror", PROTO_HTTPS: "HTTPS mirror"}
_SCANNER_NAME = {SCANNER_RSYNC: "RSYNC", SCANNER_FTP: "FTP", SCANNER_HTTP: "HTTP"}


def _event(kind: int, mirror_id: int, now_ns: int, **extra: object) -> str:
    doc: dict[str, object] = {
        "Type": kind,
        "MirrorID": mirror_id,
        "Timestamp": format_rfc3339_nano(now_ns),
    }
    doc.update(extra)
    return dumps(doc).decode("utf-8")


def error_event(mirror_id: int, err: str, now_ns: int) -> str:
    return _event(TYPE_ERROR, mirror_id, now_ns, Err=err)


def added_event(mirror_id: int, now_ns: int) -> str:
    return _event(TYPE_ADDED, mirror_id, now_ns)


def edited_event(mirror_id: int, now_ns: int) -> str:
    return _event(TYPE_EDITED, mirror_id, now_ns)


def enabled_event(mirror_id: int, now_ns: int) -> str:
    return _event(TYPE_ENABLED, mirror_id, now_ns)


def disabled_event(mirror_id: int, now_ns: int) -> str:
    return _event(TYPE_DISABLED, mirror_id, now_ns)


def state_changed_event(mirror_id: int, proto: int, up: bool, reason: str, now_ns: int) -> str:
    return _event(TYPE_STATE_CHANGED, mirror_id, now_ns, Proto=proto, Up=up, Reason=reason)


def scan_started_event(mirror_id: int, typ: int, now_ns: int) -> str:
    return _event(TYPE_SCAN_STARTED, mirror_id, now_ns, Typ=typ)


def scan_completed_event(
    mirror_id: int, files: int, known: int, removed: int, tz_offset_ms: int, now_ns: int
) -> str:
    return _event(
        TYPE_SCAN_COMPLETED,
        mirror_id,
        now_ns,
        FilesIndexed=files,
        KnownIndexed=known,
        Removed=removed,
        TZOffset=tz_offset_ms,
    )


def render_event(json_text: str) -> tuple[int | None, str] | None:
    """``(timestamp ns or None for the zero time, text)`` of a stored entry; ``None`` if the
    entry cannot be read (not JSON, wrong field types, unknown type)."""
    try:
        doc = json.loads(json_text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    fields = _Fields(doc)
    kind = fields.integer("Type")
    stamp = fields.get("Timestamp", str)
    if kind is None or stamp is _INVALID:
        return None
    ns = None if stamp is None else parse_rfc3339(stamp)
    if stamp is not None and ns is None and stamp != "0001-01-01T00:00:00Z":
        return None
    text = _render_text(kind, fields)
    return None if text is None else (ns, text)


def format_log_line(ns: int | None, text: str) -> str:
    """One line of the ``logs`` command: ``2006-01-02 15:04:05 UTC: text``."""
    return f"{format_log_time(ns)}: {text}"


def _render_text(kind: int, fields: _Fields) -> str | None:
    if kind in _FIXED_TEXT:
        return _FIXED_TEXT[kind]
    if kind == TYPE_ERROR:
        err = fields.text("Err")
        return None if err is None else f"Error: {err}"
    if kind == TYPE_STATE_CHANGED:
        proto, up, reason = fields.integer("Proto"), fields.get("Up", bool), fields.text("Reason")
        if proto is None or up is _INVALID or reason is None:
            return None
        subject = _PROTO_SUBJECT.get(proto, "Mirror")
        if up:
            return f"{subject} is up"
        return f"{subject} is down: {reason}" if reason else f"{subject} is down"
    if kind == TYPE_SCAN_STARTED:
        typ = fields.integer("Typ")
        return None if typ is None else f"{_SCANNER_NAME.get(typ, 'UNKNOWN')} scan started"
    if kind == TYPE_SCAN_COMPLETED:
        numbers = [fields.integer(name) for name in ("FilesIndexed", "KnownIndexed", "Removed")]
        offset = fields.integer("TZOffset")
        if offset is None or None in numbers:
            return None
        files, known, removed = numbers
        text = f"Scan completed: {files} files ({known} known), {removed} removed"
        if offset:
            text += f" (corrected timezone offset: {format_go_duration(offset * 1_000_000)})"
        return text
    return None


class _Invalid(enum.Enum):
    INVALID = "invalid"


_INVALID: Final = _Invalid.INVALID
_V = TypeVar("_V")


class _Fields:
    """Field access with Go's unmarshalling rules: case-insensitive names, missing = zero."""

    def __init__(self, doc: dict[str, object]) -> None:
        self._doc = doc
        self._folded = {key.casefold(): value for key, value in reversed(doc.items())}

    def get(self, name: str, kind: type[_V]) -> _V | Literal[_Invalid.INVALID] | None:
        """The value, ``None`` when missing or null, ``_INVALID`` when of another type."""
        value = self._doc[name] if name in self._doc else self._folded.get(name.casefold())
        if value is None:
            return None
        if kind is not bool and isinstance(value, bool):
            return _INVALID
        return value if isinstance(value, kind) else _INVALID

    def integer(self, name: str) -> int | None:
        """An integer field (0 when missing); ``None`` when invalid."""
        value = self.get(name, int)
        return None if value is _INVALID else (value or 0)

    def text(self, name: str) -> str | None:
        """A string field ("" when missing); ``None`` when invalid."""
        value = self.get(name, str)
        return None if value is _INVALID else (value or "")

