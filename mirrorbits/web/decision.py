"""What the request path decided to answer, before it is bytes (spec §8).

:mod:`mirrorbits.web.plan` turns a request into one :data:`Decision`;
:mod:`mirrorbits.web.respond` turns a decision into the status, headers and body sent, the
same for the channel's in-memory answer and for twisted.web. A decision that serves a
download carries a :class:`Download`, which :mod:`mirrorbits.web.accounting` logs and counts.

A new kind of answer is a new class here, added to :data:`Decision`, with its headers in
:func:`mirrorbits.web.respond.respond`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from attrs import frozen

from mirrorbits.model import FileInfo, GeoRecord, Mirror


class Download:
    """A served download, as the download log and the counters see it."""

    __slots__ = ("client", "distance", "fallback", "info", "ip", "kind", "mirror", "status")

    def __init__(self, kind: str, status: int, info: FileInfo, ip: str, client: GeoRecord,
                 mirror: Mirror, distance: float, fallback: bool) -> None:
        self.kind = kind  # "REDIRECT" or "JSON"
        self.status = status
        self.info = info
        self.ip = ip
        self.client = client
        self.mirror = mirror
        self.distance = distance
        self.fallback = fallback


class Redirect:
    """A 302 to ``location``, with the alternatives as ``Link`` values (§8.4)."""

    __slots__ = ("download", "links", "location")

    def __init__(self, location: bytes, links: list[bytes], download: Download) -> None:
        self.location = location
        self.links = links
        self.download = download


@frozen
class Json:
    """A JSON document (§8.5): the ``Results`` (200, a download) or a 503's reasons."""

    status: int
    body: bytes
    download: Download | None


@frozen
class Page:
    """A page or a plain answer of a query (``?mirrorlist``, ``?mirrorstats``, ``?stats``,
    checksums); ``no_cache`` adds ``Cache-Control: private, no-cache``."""

    status: int
    content_type: bytes
    body: bytes
    no_cache: bool = False


@frozen
class ErrorText:
    """A plain-text error: ``message`` and a newline (403, 404, 503, 500...)."""

    status: int
    message: str


@frozen
class NotModified:
    """The 304 of a conditional request (``If-Modified-Since``); ``mtime`` in Unix seconds."""

    mtime: int


@frozen
class Moved:
    """The router's 301 to the clean form of the path (``location``, query kept)."""

    location: bytes


Decision = Redirect | Json | Page | ErrorText | NotModified | Moved


@frozen
class Pending:
    """The plan needs to wait (Redis, a page to render): ``resume()`` finishes it.

    Nothing has changed when a plan is pending (no random draw, nothing counted), so a
    caller that cannot wait may drop it and plan the request again elsewhere.
    """

    resume: Callable[[], Coroutine[Any, Any, Decision]]
