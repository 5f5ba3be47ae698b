"""What the request path reads of a request, whichever parser read it.

The channel's quick parser (:mod:`mirrorbits.web.quickhttp`) builds a
:class:`~mirrorbits.web.quickhttp.SimpleRequest`; a twisted.web ``Request`` is read through
:class:`TwistedHead`. Both are a :class:`RequestHead`, so the plan sees one kind of request.
"""

from __future__ import annotations

from typing import Protocol

from twisted.web.iweb import IRequest

from mirrorbits.web.paths import parse_query


class RequestHead(Protocol):
    """A request's method, target, query (read as the reference reads it), headers and peer."""

    method: bytes
    uri: bytes
    path: bytes  # the target without its query, still percent-encoded
    args: dict[bytes, list[bytes]]
    client_host: str  # the peer's address ("" for a UNIX socket)

    def getHeader(self, key: bytes) -> bytes | None:
        """The (last) value of header ``key`` (lower-case name), or None."""


class TwistedHead:
    """A twisted.web request as a :class:`RequestHead`.

    The query is read with :func:`parse_query` (twisted.web drops keys without ``=``, such
    as ``?md5``).
    """

    __slots__ = ("_request", "args", "client_host", "method", "path", "uri")

    def __init__(self, request: IRequest) -> None:
        self._request = request
        self.method: bytes = request.method
        self.uri: bytes = request.uri
        self.path: bytes = request.path
        self.args = parse_query(request.uri)
        self.client_host: str = getattr(request.getClientAddress(), "host", "")

    def getHeader(self, key: bytes) -> bytes | None:
        value: bytes | None = self._request.getHeader(key)
        return value
