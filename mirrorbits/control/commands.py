"""AMP commands of the control channel, shared by the daemon and ``mirrorbits-ctl``.

One command per call of the reference's RPC service (spec §14.2). Every command carries the
control password (``password``, optional on the wire: a missing one counts as empty, so it is
refused cleanly instead of breaking anything). Every error a responder may raise is declared
with a stable code; the server turns anything else into :class:`ServerError`, so a failing
command never drops the connection.

Mirrors and other structured values travel as JSON text in a :class:`Json` argument, which
splits its bytes over several AMP keys: no single AMP value exceeds the 64 KiB limit, whatever
the size of the data. ``List`` is paginated on top of that.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs
from twisted.protocols import amp

from mirrorbits.confighold import RELOAD_REFUSED
from mirrorbits.model import Mirror

# Largest chunk of one Json value; AMP's limit is 0xFFFF bytes per value.
CHUNK_SIZE = 60_000
# Default and largest page of ``List``.
LIST_PAGE_SIZE = 500
LIST_MAX_PAGE_SIZE = 2_000


class ControlError(Exception):
    """Base of the declared control errors; the message is shown to the operator."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class MirrorNotFound(ControlError):
    """No mirror has the requested ID."""


class NameTaken(ControlError):
    """Another mirror already uses the requested name."""


class InvalidArgument(ControlError):
    """An argument was refused (bad ID, invalid URL, ...)."""


class AccessDenied(ControlError):
    """The password does not match ``RPCPassword``."""


class TooManyFailures(ControlError):
    """Too many wrong passwords came from this source lately: refused without checking."""


class NotAvailable(ControlError):
    """The daemon does not provide this operation (yet)."""


class ServerError(ControlError):
    """Any other failure on the daemon side, with its message."""


ERRORS: dict[type[Exception], bytes] = {
    MirrorNotFound: b"MIRROR_NOT_FOUND",
    NameTaken: b"NAME_TAKEN",
    InvalidArgument: b"INVALID_ARGUMENT",
    AccessDenied: b"ACCESS_DENIED",
    TooManyFailures: b"TOO_MANY_FAILURES",
    NotAvailable: b"NOT_AVAILABLE",
    ServerError: b"SERVER_ERROR",
}


class Json(amp.Argument):
    """A JSON value, its UTF-8 text split over ``name.0``, ``name.1``, ... (count in ``name``).

    An optional one may be ``None``, sent as nothing at all.
    """

    def toBox(
        self, name: bytes, strings: dict[bytes, bytes], objects: dict[str, object],
        proto: amp.BinaryBoxProtocol,
    ) -> None:
        value = self.retrieve(objects, name.decode("ascii"), proto)
        if value is None and self.optional:
            return
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]
        strings[name] = str(len(chunks)).encode("ascii")
        for index, chunk in enumerate(chunks):
            strings[b"%s.%d" % (name, index)] = chunk

    def fromBox(
        self, name: bytes, strings: dict[bytes, bytes], objects: dict[str, object],
        proto: amp.BinaryBoxProtocol,
    ) -> None:
        count_text = self.retrieve(strings, name, proto)
        if count_text is None:  # optional, and left out (by an older peer)
            objects[name.decode("ascii")] = None
            return
        count = int(count_text)
        data = b"".join(strings.pop(b"%s.%d" % (name, index)) for index in range(count))
        objects[name.decode("ascii")] = json.loads(data.decode("utf-8"))


def mirror_to_json(mirror: Mirror) -> dict[str, object]:
    """A mirror as a JSON object (attribute names as keys)."""
    return attrs.asdict(mirror)


_MIRROR_FIELDS = {field.name for field in attrs.fields(Mirror)}


def mirror_from_json(data: object) -> Mirror:
    """The mirror encoded by :func:`mirror_to_json`; unknown keys are ignored."""
    if not isinstance(data, dict):
        raise InvalidArgument("a mirror must be a JSON object")
    try:
        return Mirror(**{key: value for key, value in data.items() if key in _MIRROR_FIELDS})
    except TypeError as error:
        raise InvalidArgument(f"invalid mirror: {error}") from None


def _password() -> list[tuple[bytes, amp.Argument]]:
    return [(b"password", amp.Unicode(optional=True))]


class _Command(amp.Command):
    errors = ERRORS


class Ping(_Command):
    """Check the connection and the password."""

    arguments = _password()
    response = []


class GetVersion(_Command):
    """The daemon's version information, as ``[label, value]`` pairs."""

    arguments = _password()
    response = [(b"fields", Json())]


class Reload(_Command):
    """Reload the configuration, like SIGHUP.

    The answer carries the warnings of the new file (absent from an older daemon's answer, and
    ignored by an older client: AMP reads only the keys a command declares). A refused file is a
    :class:`ServerError` whose message is :func:`reload_refusal`.
    """

    arguments = _password()
    response = [(b"warnings", Json(optional=True))]


WARNING_PREFIX = "warning: "
# The warnings a refused reload carries in its error message, which AMP limits to 64 KiB.
MAX_REFUSAL_WARNINGS = 20
MAX_REFUSAL_CHARACTERS = 20_000


def warning_lines(warnings: Sequence[str], limit: int | None = None) -> str:
    """Warnings as the operator reads them: one marked line each, at most *limit* of them."""
    lines: list[str] = []
    for warning in warnings[:limit]:
        lines.append(WARNING_PREFIX + " ".join(warning.splitlines()) + "\n")
    left = len(warnings) - len(lines)
    if left:
        lines.append(f"{WARNING_PREFIX}... and {left} more in the daemon's log\n")
    return "".join(lines)


def reload_refusal(error: str, warnings: Sequence[str]) -> str:
    """The message of a refused reload: the warnings that may explain it, then the error."""
    kept = list(warnings[:MAX_REFUSAL_WARNINGS])
    while kept and sum(len(warning) for warning in kept) > MAX_REFUSAL_CHARACTERS:
        kept.pop()
    shown = warning_lines(warnings, len(kept))
    return f"{shown}{RELOAD_REFUSED}: {error}"


class Upgrade(_Command):
    """Start a seamless binary upgrade."""

    arguments = _password()
    response = []


class CheckWritable(_Command):
    """Nothing when the daemon can write to Redis now; while only a read-only replica answers,
    the refusal a write gets (:class:`ServerError`). Asked before ``mirrorbits-ctl`` waits for
    the operator (an editor, a confirmation) ahead of a write. An older daemon does not know
    it (``UnhandledCommand``): its write refuses at the end, as before."""

    arguments = _password()
    response = []


class ChangeStatus(_Command):
    """Enable or disable a mirror; answers its name."""

    arguments = [*_password(), (b"id", amp.Integer()), (b"enabled", amp.Boolean())]
    response = [(b"name", amp.Unicode())]


class List(_Command):
    """One page of mirrors, ordered by ID; ``more`` tells whether another page follows."""

    arguments = [
        *_password(),
        (b"offset", amp.Integer(optional=True)),
        (b"limit", amp.Integer(optional=True)),
    ]
    response = [(b"mirrors", Json()), (b"more", amp.Boolean()), (b"total", amp.Integer())]


class MirrorInfo(_Command):
    """One mirror."""

    arguments = [*_password(), (b"id", amp.Integer())]
    response = [(b"mirror", Json())]


class AddMirror(_Command):
    """Add a mirror (geolocated by the daemon), created disabled."""

    arguments = [*_password(), (b"mirror", Json())]
    response = [
        (b"name", amp.Unicode()),
        (b"latitude", amp.Float()),
        (b"longitude", amp.Float()),
        (b"country", amp.Unicode()),
        (b"continent", amp.Unicode()),
        (b"as_name", amp.Unicode()),
        (b"as_num", amp.Integer()),
        (b"located", amp.Boolean()),
        (b"warnings", Json()),
    ]


class UpdateMirror(_Command):
    """Replace a mirror's settings; answers the YAML diff of the change."""

    arguments = [*_password(), (b"mirror", Json())]
    response = [(b"diff", Json())]


class RemoveMirror(_Command):
    """Remove a mirror and everything stored for it (statistics excepted)."""

    arguments = [*_password(), (b"id", amp.Integer())]
    response = [(b"name", amp.Unicode())]


class GeoUpdateMirror(_Command):
    """Geolocate a mirror again; answers the mirror as it would become, without saving it."""

    arguments = [*_password(), (b"id", amp.Integer())]
    response = [(b"mirror", Json()), (b"diff", Json()), (b"warnings", Json())]


class RefreshRepository(_Command):
    """Scan the local repository now."""

    arguments = [*_password(), (b"rehash", amp.Boolean(optional=True))]
    response = []


class ScanMirror(_Command):
    """Scan one mirror now (``protocol``: ``all``, ``rsync``, ``ftp`` or ``http``; timeout in
    seconds)."""

    arguments = [
        *_password(),
        (b"id", amp.Integer()),
        (b"auto_enable", amp.Boolean(optional=True)),
        (b"protocol", amp.Unicode(optional=True)),
        (b"scan_timeout", amp.Float(optional=True)),
    ]
    response = [
        (b"enabled", amp.Boolean()),
        (b"files_indexed", amp.Integer()),
        (b"known_indexed", amp.Integer()),
        (b"removed", amp.Integer()),
        (b"tz_offset_ms", amp.Integer()),
    ]


class GetProgress(_Command):
    """How far the running local scan (``operation="refresh"``) or the scan of mirror ``id``
    (``operation="scan"``) got on this node: files ``done`` of ``total`` (0: unknown) in
    ``phase``, begun ``seconds`` ago; ``running`` is false when none runs.

    ``mirrorbits-ctl`` polls it during a long ``refresh`` or ``scan`` to show progress on a
    terminal; it ignores a daemon that does not know it.
    """

    arguments = [*_password(), (b"operation", amp.Unicode()), (b"id", amp.Integer(optional=True))]
    response = [
        (b"running", amp.Boolean()),
        (b"phase", amp.Unicode()),
        (b"done", amp.Integer()),
        (b"total", amp.Integer()),
        (b"seconds", amp.Float()),
    ]


class StatsFile(_Command):
    """Download counts per file whose path matches ``pattern``.

    Days from ``start`` up to ``end`` excluded (``YYYY-MM-DD``), like the reference's range;
    ``mirrorbits-ctl`` sends the day after its ``-end-date`` so that the end day counts.
    """

    arguments = [
        *_password(),
        (b"pattern", amp.Unicode()),
        (b"start", amp.Unicode()),
        (b"end", amp.Unicode()),
    ]
    response = [(b"files", Json())]


class StatsMirror(_Command):
    """Download requests and bytes of one mirror, days ``start`` up to ``end`` excluded."""

    arguments = [
        *_password(),
        (b"id", amp.Integer()),
        (b"start", amp.Unicode()),
        (b"end", amp.Unicode()),
    ]
    response = [(b"mirror", Json()), (b"requests", amp.Integer()), (b"bytes", amp.Integer())]


class GetMirrorLogs(_Command):
    """The last ``max_results`` rendered event-log lines of a mirror (500 when <= 0)."""

    arguments = [*_password(), (b"id", amp.Integer()), (b"max_results", amp.Integer())]
    response = [(b"lines", Json())]


class MatchMirror(_Command):
    """``[id, name]`` of every mirror whose name contains ``pattern`` (case-insensitive)."""

    arguments = [*_password(), (b"pattern", amp.Unicode())]
    response = [(b"mirrors", Json())]
