"""The HTTP ``Site``: no per-request access logging, bounded request reads, no form parsing.

Timeouts (one timer per connection, Twisted's ``TimeoutMixin``), as the reference's HTTP
server has them: a request must arrive whole within the read timeout, counted from the
connection (or from the first byte of the next request on a kept-alive connection) and never
pushed back by bytes trickling in, so a client sending one byte a second is closed on time; an
idle kept-alive connection is closed after the idle timeout (the same value by default, as
in the reference). While a request is being answered no timer runs (Twisted's behaviour).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.web import http
from twisted.web.http import HTTPChannel, datetimeToString
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mirrorbits.config import DEFAULT_HTTP_READ_TIMEOUT
from mirrorbits.logs import Logger
from mirrorbits.web.quickhttp import MAX_SIZE, SimpleRequest, read_simple_request

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
    """A request that never parses uploaded form bodies (a redirector needs none), and that
    its :class:`RedirectorChannel` knows of while it is answered."""

    def __init__(self, channel: HTTPChannel, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)
        if isinstance(channel, RedirectorChannel):
            channel.request_started(self)


class RedirectorChannel(HTTPChannel):
    """An ``HTTPChannel`` that answers ordinary requests from memory without a ``Request``.

    When twisted.web holds nothing of the connection (no request being answered, no byte of
    an unfinished one) and one read is exactly one ordinary GET or HEAD
    (:func:`read_simple_request`), the site's resource plans it (``answer_head``) and, when
    memory holds the answer, it is written at once. Otherwise the bytes go to twisted.web
    (``HTTPChannel.dataReceived``), whose ``Request`` reaches the same plan and serializer
    through the resource's ``render``: the answers are the same bytes either way.

    What twisted.web holds is known from this class's own records, not from HTTPChannel's
    state: the requests it is answering (:class:`RedirectorRequest` announces itself, and
    :meth:`requestDone` ends it), and the bytes handed to it that do not yet form one
    complete ordinary request (``_unframed``; None once they no longer can, such as
    pipelined requests or a body: the connection then stays with twisted.web). Both ways
    share the timeouts of the module docstring.
    """

    site: RedirectorSite
    _client_host: str | None = None
    closing = False  # every answer from now on says "Connection: close" and ends the connection
    read_timeout: float = DEFAULT_HTTP_READ_TIMEOUT  # set by the site for each connection
    idle_timeout: float = DEFAULT_HTTP_READ_TIMEOUT
    between_requests = False  # the timer runs as the idle timer, not a request's deadline
    _unframed: bytes | None = b""  # bytes handed to twisted.web not yet a whole request
    _replaying = False  # twisted.web is reading the bytes it kept during a request

    def connectionMade(self) -> None:
        self._answering: list[Request] = []  # requests twisted.web is answering
        super().connectionMade()

    def request_started(self, request: Request) -> None:
        """Called by each :class:`RedirectorRequest` this channel creates."""
        self._answering.append(request)

    def resetTimeout(self) -> None:
        """Do nothing: HTTPChannel calls this on every read, which would let a client that
        sends one byte at a time keep its connection forever. The deadline is set when a
        request starts (:meth:`dataReceived`) and the idle timer when an answer ends."""

    def timeoutConnection(self) -> None:
        """Close a connection whose request did not arrive in time, or that idled too long.

        As HTTPChannel does (pending bytes get ``abortTimeout`` seconds to leave) but
        without its log line: one per slow client would let anyone fill the log.
        """
        if self.abortTimeout is not None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request line or header line longer than ``MAX_LENGTH`` (16 KiB): say so and
        close, rather than LineReceiver's silent close (the client saw an empty reply)."""
        transport = self.transport
        if transport is None:
            return
        first = not getattr(self, "_receivedHeaderSize", 0)  # no line of this request yet
        status, what = ((b"414 URI Too Long", b"request line") if first else
                        (b"431 Request Header Fields Too Large", b"header line"))
        body = b"%s: a %s is limited to %d bytes\n" % (status[4:], what, self.MAX_LENGTH)
        transport.write(b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (status, len(body), body))
        transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        # Bytes from the network (not twisted.web's kept ones) may be answered from memory.
        if not self._replaying and self._answer_from_memory(data):
            return
        if self.between_requests:  # the first bytes of the next request: its deadline
            self.between_requests = False
            self.setTimeout(self.read_timeout)
        super().dataReceived(data)

    def _answer_from_memory(self, data: bytes) -> bool:
        """Answer ``data`` from memory if it is one ordinary request and twisted.web holds
        nothing of this connection; whether it was answered. Else record what twisted.web
        is about to hold."""
        transport = self.transport
        unframed = self._unframed
        if transport is None or unframed is None:
            return False
        host = self._client_host
        if host is None:  # a connection's peer never changes
            host = self._client_host = getattr(transport.getPeer(), "host", "")
        if unframed:  # the rest of a request twisted.web has the start of?
            unframed += data
            whole = read_simple_request(unframed, host) is not None
            self._unframed = b"" if whole else (unframed if len(unframed) < MAX_SIZE else None)
            return False
        head = read_simple_request(data, host)
        if head is None:
            self._unframed = data
            return False
        if self._answering:
            return False
        try:
            answer = self.site.answer_head(head)
        except Exception:  # twisted.web answers it instead (a 500 if it fails too)
            _log.failure("in-memory answer to {path!r} failed", path=head.uri)
            answer = None
        if answer is None:
            return False
        self.setTimeout(self.idle_timeout)
        self.between_requests = True
        if self.closing:
            transport.write(_connection_close(answer))
            transport.loseConnection()
        else:
            send_now(transport, answer)
        return True

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        if self.closing:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            return False
        return bool(super().checkPersistence(request, version))

    def requestDone(self, request: Request) -> None:
        if request in self._answering:
            self._answering.remove(request)
        if self.closing:
            self.persistent = False  # an answer already on its way when closing began
        if self.persistent:
            self.between_requests = True
        self._replaying = True
        try:  # restores the request's timeout, then reads the bytes kept meanwhile
            super().requestDone(request)
        finally:
            self._replaying = False
        if self.between_requests and self.persistent:  # no new request began: idle timer
            self.setTimeout(self.idle_timeout)

    def close_after_answer(self) -> None:
        """End this connection cleanly: each answer from now on, including one being prepared,
        says ``Connection: close`` and the connection closes after it.

        An idle connection is left open: its client may be sending its next request right now,
        and closing under it would fail that request (see :meth:`close_if_idle`).
        """
        self.closing = True
        for request in self._answering:
            if not request.startedWriting:
                request.responseHeaders.setRawHeaders(b"connection", [b"close"])
                self.persistent = False

    def close_if_idle(self) -> bool:
        """Close this connection if it is idle and no byte of a request waits unread in the
        kernel; whether it was closed.

        A client may still send a request at the very moment the connection closes: that race
        is inherent to HTTP/1.1 keep-alive (RFC 9112 §9.5), so call this only for connections
        that have been silent for a while.
        """
        transport = self.transport
        if transport is None or not self.idle() or _bytes_waiting(transport):
            return False
        transport.loseConnection()
        return True

    def idle(self) -> bool:
        """Whether twisted.web holds nothing of this connection, as far as this channel knows:
        no request being answered, no byte of an unfinished one."""
        return not getattr(self, "_answering", True) and self._unframed == b""


def _connection_close(answer: bytes) -> bytes:
    """A complete answer from the channel, with ``Connection: close`` where twisted.web puts
    it when :meth:`RedirectorChannel.checkPersistence` asks for it (first after the status)."""
    status, _, rest = answer.partition(b"\r\n")
    return b"".join((status, b"\r\nConnection: close\r\n", rest))


def send_now(transport: ITransport, data: bytes) -> None:
    """Write ``data`` on ``transport``: straight to its socket when nothing waits in its
    buffers, the rest (what the kernel did not take) through the transport as usual.

    ``transport.write`` only buffers: the reactor then watches the socket for writing, wakes
    up, sends and stops watching (two ``epoll_ctl`` calls and one more turn of the loop per
    answer). Sending at once skips all that when the kernel takes the whole answer, the
    usual case for a redirect. Anything unusual (TLS, bytes already waiting, a connection
    closing, an error) goes through ``transport.write``, which reports errors as always.
    """
    if (type(transport) is not tcp.Server or transport.TLS or not transport.connected
            or transport.disconnecting or transport._tempDataBuffer
            or len(transport.dataBuffer) > transport.offset):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except BlockingIOError:
        sent = 0
    except OSError:  # the connection is broken: the transport finds out and closes it
        transport.write(data)
        return
    if sent < len(data):
        transport.write(data[sent:])


def _bytes_waiting(transport: object) -> bool:
    """Whether the kernel holds bytes the client sent that the reactor has not read yet."""
    try:
        handle = transport.getHandle()  # type: ignore[attr-defined]
        return bool(handle.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False
    except (AttributeError, OSError):  # no socket (a test transport) or a broken one
        return False


class RedirectorSite(Site):
    """A Site tuned for a redirector; downloads are logged by the resource itself.

    ``read_timeout`` gives the read (and idle) timeout in seconds for each new connection,
    so a reloaded configuration applies to the next ones.
    """

    displayTracebacks = False
    # Plain HTTP/1.1: twisted.web offers HTTP/2 only over TLS (ALPN), which the daemon never
    # terminates (docs/architecture.md, "The request path").
    protocol = RedirectorChannel  # type: ignore[assignment]
    noisy = False  # no "Starting factory" / "Stopping factory" lines

    def logPrefix(self) -> str:
        """How Twisted's port lines name this listener (``HTTP starting on 8080``)."""
        return "HTTP"

    def __init__(self, resource: Resource, reactor: IReactorTime | None = None,
                 read_timeout: Callable[[], float] = lambda: DEFAULT_HTTP_READ_TIMEOUT) -> None:
        super().__init__(resource, requestFactory=RedirectorRequest, reactor=reactor)
        self.read_timeout = read_timeout
        self.date_header = DateHeader(self.reactor)

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        if channel is not None:
            timeout = self.read_timeout()
            channel.timeOut = channel.read_timeout = channel.idle_timeout = timeout
        return channel

    def log(self, request: http.Request) -> None:
        """No access log line per request (the download log covers what matters)."""

    def answer_head(self, head: SimpleRequest) -> bytes | None:
        """The resource's whole answer to ``head`` from memory, if it has one."""
        answer = getattr(self.resource, "answer_head", None)
        if answer is None:
            return None
        return answer(head, self.date_header.value())  # type: ignore[no-any-return]
