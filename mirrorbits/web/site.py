"""The HTTP ``Site``: no per-request access logging, short idle timeout, no form parsing."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, datetimeToString
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mirrorbits.logs import Logger
from mirrorbits.web.quickhttp import SimpleRequest, read_simple_request

_log = Logger()


class DateHeader:
    """The ``Date`` header value, formatted once per second of ``clock``."""

    __slots__ = ("_clock", "_second", "_value")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        second = int(self._clock.seconds())
        if second != self._second:
            self._value = datetimeToString(second)
            self._second = second
        return self._value


class RedirectorRequest(Request):
    """A request that never parses uploaded form bodies (a redirector needs none).

    Its root resource is a leaf, so :meth:`process` goes straight to it: no path traversal,
    and a ``Date`` header formatted once per second rather than once per request. The
    resource sets the ``Server`` header itself.
    """

    def __init__(self, channel: HTTPChannel, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)

    def process(self) -> None:
        site = self.channel.site  # type: ignore[attr-defined]
        resource = site.resource
        if not isinstance(site, RedirectorSite) or self.path == b"*" or not resource.isLeaf:
            super().process()
            return
        self.site = site
        self.setHeader(b"date", site.date_header.value())
        self.prepath = []
        self.postpath = []
        try:
            self.render(resource)
        except BaseException:
            self.processingFailed(Failure())


class RedirectorChannel(HTTPChannel):
    """An ``HTTPChannel`` that answers the commonest request without building a ``Request``.

    When the connection is idle (no request in progress, nothing buffered) and one read holds
    exactly one ordinary GET or HEAD (:func:`read_simple_request`), the resource is asked for
    the complete answer from memory (``answer_head``). Anything else, and any request whose
    answer needs more than memory, goes through twisted.web exactly as before; the answers
    are the same bytes either way.
    """

    site: RedirectorSite
    _peer: Any = None
    answered = 0  # responses completed on this connection
    closing = False  # close once the current (or next) response is complete

    def dataReceived(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and self._idle():
            peer = self._peer
            if peer is None:  # a connection's peer never changes
                peer = self._peer = transport.getPeer()
            head = read_simple_request(data, peer)
            if head is not None:
                try:
                    answer = self.site.answer_head(head)
                except Exception:  # twisted.web answers it instead (a 500 if it fails too)
                    _log.failure("in-memory answer to {path!r} failed", path=head.uri)
                    answer = None
                if answer is not None:
                    self.resetTimeout()
                    transport.write(answer)
                    self.answered += 1
                    if self.closing:
                        transport.loseConnection()
                    return
        super().dataReceived(data)

    def requestDone(self, request: Any) -> None:
        self.answered += 1
        if self.closing:
            self.persistent = False  # twisted.web closes the connection after this response
        super().requestDone(request)

    def close_when_idle(self) -> None:
        """Close this connection now if it idles between requests, else after its response.

        A connection that has not sent its first request yet keeps waiting for it: closing it
        would fail a request already on its way.
        """
        self.closing = True
        if self.answered and self._idle() and self.transport is not None:
            self.transport.loseConnection()

    def _idle(self) -> bool:
        """Whether Twisted holds nothing of this connection: no request, no partial line.

        These are HTTPChannel's and LineReceiver's own attributes; should a Twisted release
        rename one, the answer is "not idle" and every request takes twisted.web's path.
        """
        return (not getattr(self, "requests", True) and getattr(self, "persistent", False)
                and getattr(self, "line_mode", 0) == 1 and getattr(self, "_buffer", None) == b""
                and getattr(self, "_waitingForTransport", True) is False)


class RedirectorSite(Site):
    """A Site tuned for a redirector; downloads are logged by the resource itself."""

    displayTracebacks = False
    protocol = RedirectorChannel  # type: ignore[assignment]  # HTTP/1.1: no HTTP/2 wrapper

    def __init__(self, resource: Resource, reactor: Any = None, timeout: float = 30) -> None:
        super().__init__(resource, requestFactory=RedirectorRequest, reactor=reactor)
        self.timeOut = timeout
        self.date_header = DateHeader(self.reactor)

    def log(self, request: Any) -> None:
        """No access log line per request (the download log covers what matters)."""

    def answer_head(self, head: SimpleRequest) -> bytes | None:
        """The resource's whole answer to ``head`` from memory, if it has one."""
        answer = getattr(self.resource, "answer_head", None)
        if answer is None:
            return None
        return answer(head, self.date_header.value())  # type: ignore[no-any-return]
