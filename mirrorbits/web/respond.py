"""One serializer: a :data:`~mirrorbits.web.decision.Decision` becomes status, headers, body.

:func:`respond` is the only place the headers of an answer are chosen (and gzip applied);
:func:`wire` writes a :class:`Response` as HTTP/1.1 bytes for the channel's in-memory
answer, :func:`send` through a twisted.web ``Request``. Both give the same bytes: the
``Date`` first (the channel's own, or twisted.web's), then the headers in :func:`respond`'s
order, then ``Content-Length`` (none for a 304, nor for a HEAD answer without body: what
twisted.web and the reference send).

A new header of every answer, or of one kind of answer, is added in :func:`respond`.
"""

from __future__ import annotations

from typing import Final, cast

from twisted.web.http import RESPONSES
from twisted.web.iweb import IRequest

from mirrorbits.config import Config
from mirrorbits.encoding import format_http_date
from mirrorbits.web.compression import gzipped
from mirrorbits.web.decision import (
    Decision,
    Download,
    ErrorText,
    Json,
    Moved,
    NotModified,
    Page,
    Redirect,
)
from mirrorbits.web.head import RequestHead

HTML: Final = b"text/html; charset=utf-8"
JSON: Final = b"application/json; charset=utf-8"
TEXT: Final = b"text/plain; charset=utf-8"
NO_CACHE: Final = b"private, no-cache"

# Header names as twisted.web writes them (it capitalises each word).
_SERVER: Final = b"Server"
_CACHE_CONTROL: Final = b"Cache-Control"
_CONTENT_TYPE: Final = b"Content-Type"
_LOCATION: Final = b"Location"
_LINK: Final = b"Link"

Headers = list[tuple[bytes, bytes]]


class Response:
    """An answer ready to send: status, headers in order, body, and how it is framed.

    ``length`` is the ``Content-Length`` value (None: no such header); ``body`` is sent
    only when ``send_body`` (never for HEAD or a 304).
    """

    __slots__ = ("body", "headers", "length", "send_body", "status")

    def __init__(self, status: int, headers: Headers, body: bytes, head_only: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.send_body = not head_only and status != 304
        if status == 304 or (head_only and not body):
            self.length: bytes | None = None
        else:
            self.length = b"%d" % len(body)


def respond(decision: Decision, head: RequestHead, config: Config, server: bytes) -> Response:
    """The status, headers and body of ``decision`` for ``head``."""
    head_only = head.method == b"HEAD"
    if type(decision) is Redirect:  # the commonest answer first
        headers: Headers = [(_SERVER, server), (_CACHE_CONTROL, NO_CACHE),
                            (_CONTENT_TYPE, HTML), (_LOCATION, decision.location)]
        for link in decision.links:
            headers.append((_LINK, link))
        headers += decision.file_headers
        if not config.gzip:
            return Response(302, headers, b"", head_only)
        return _body(302, headers, b"", head, config, head_only)
    if isinstance(decision, Json):
        headers = [(_SERVER, server), (_CACHE_CONTROL, NO_CACHE), (_CONTENT_TYPE, JSON)]
        return _body(decision.status, headers, decision.body, head, config, head_only)
    if isinstance(decision, Page):
        headers = [(_SERVER, server)]
        if decision.no_cache:
            headers.append((_CACHE_CONTROL, NO_CACHE))
        headers.append((_CONTENT_TYPE, decision.content_type))
        return _body(decision.status, headers, decision.body, head, config, head_only)
    if isinstance(decision, ErrorText):
        headers = [(_SERVER, server), (_CONTENT_TYPE, TEXT),
                   (b"X-Content-Type-Options", b"nosniff")]
        body = decision.message.encode("utf-8", "replace") + b"\n"
        return _body(decision.status, headers, body, head, config, head_only)
    if isinstance(decision, NotModified):
        last_modified = format_http_date(decision.mtime).encode("ascii")
        return Response(304, [(_SERVER, server), (b"Last-Modified", last_modified)], b"",
                        head_only)
    if isinstance(decision, Moved):  # the router's answer: no Server header, no gzip
        return Response(301, [(_LOCATION, decision.location), (_CONTENT_TYPE, HTML)],
                        _moved_body(decision.location), head_only)
    raise TypeError(f"not a decision: {decision!r}")


def _body(status: int, headers: Headers, body: bytes, head: RequestHead, config: Config,
          head_only: bool) -> Response:
    """The response, its body gzipped when configured and accepted (spec §8.6)."""
    if config.gzip:
        compressed = gzipped(config, head.getHeader(b"accept-encoding"), body)
        if compressed is not None:
            headers.append((b"Content-Encoding", b"gzip"))
            body = compressed
    return Response(status, headers, body, head_only)


def _moved_body(location: bytes) -> bytes:
    href = location.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
    href = href.replace(b'"', b"&#34;").replace(b"'", b"&#39;")
    return b'<a href="' + href + b'">Moved Permanently</a>.\n\n'


def wire(response: Response, date: bytes) -> bytes:
    """``response`` as the HTTP/1.1 bytes twisted.web would write for it."""
    parts = [b"HTTP/1.1 %d %s\r\nDate: " % (response.status, RESPONSES[response.status]),
             date]
    for name, value in response.headers:
        parts += (b"\r\n", name, b": ", value)
    parts.append(b"\r\n")
    if response.length is not None:
        parts.append(b"Content-Length: %s\r\n" % response.length)
    parts.append(b"\r\n")
    if response.send_body:
        parts.append(response.body)
    return b"".join(parts)


class RedirectWire:
    """:func:`wire` of :func:`respond`'s redirect, cut around what changes from one redirect
    to the next (the ``Date``, ``Location``, ``Link`` and file header values): the channel
    joins the pieces instead of building a :class:`Response` for every redirect.

    The pieces are cut from the bytes :func:`respond` and :func:`wire` give for a redirect
    whose variable values are markers, so the headers stay chosen in :func:`respond` only.
    Valid for one configuration and server header, without gzip (its answer depends on the
    request's ``Accept-Encoding``).
    """

    __slots__ = ("_before_date", "_before_location", "_header", "_link", "_separator", "_tail")

    def __init__(self, config: Config, server: bytes, head_only: bool) -> None:
        assert not config.gzip
        redirect = Redirect(_MARK_LOCATION, [_MARK_LINK], cast(Download, None),
                            ((_MARK_NAME, _MARK_VALUE),))
        whole = wire(respond(redirect, _MarkerHead(b"HEAD" if head_only else b"GET"), config,
                             server), _MARK_DATE)
        self._before_date, rest = whole.split(_MARK_DATE)
        self._before_location, rest = rest.split(_MARK_LOCATION)
        self._link, rest = rest.split(_MARK_LINK)
        self._header, rest = rest.split(_MARK_NAME)
        self._separator, self._tail = rest.split(_MARK_VALUE)

    def answer(self, redirect: Redirect, date: bytes) -> bytes:
        """The same bytes as ``wire(respond(redirect, ...), date)``."""
        parts = [self._before_date, date, self._before_location, redirect.location]
        if redirect.links:
            link = self._link
            parts += (link, link.join(redirect.links))
        header, separator = self._header, self._separator
        for name, value in redirect.file_headers:
            parts += (header, name, separator, value)
        parts.append(self._tail)
        return b"".join(parts)


_MARK_DATE: Final = b"\0date\0"
_MARK_LOCATION: Final = b"\0location\0"
_MARK_LINK: Final = b"\0link\0"
_MARK_NAME: Final = b"\0name\0"
_MARK_VALUE: Final = b"\0value\0"


class _MarkerHead:
    """A request with no header: what :class:`RedirectWire` answers."""

    __slots__ = ("args", "client_host", "method", "path", "uri")

    def __init__(self, method: bytes) -> None:
        self.method = method
        self.uri = self.path = b"/"
        self.args: dict[bytes, list[bytes]] = {}
        self.client_host = ""

    def getHeader(self, key: bytes) -> bytes | None:
        return None


def send(request: IRequest, response: Response) -> None:
    """Answer ``request`` (twisted.web) with ``response`` and finish it.

    twisted.web has set ``Server`` (its own) and ``Date``; its ``Server`` is replaced by
    ours, or removed (a 301), and ``Date`` stays first.
    """
    headers = request.responseHeaders
    headers.removeHeader(_SERVER)
    for name, value in response.headers:
        headers.addRawHeader(name, value)
    if response.length is not None:
        headers.setRawHeaders(b"Content-Length", [response.length])
    request.setResponseCode(response.status)
    if response.send_body and response.body:
        request.write(response.body)
    request.finish()
