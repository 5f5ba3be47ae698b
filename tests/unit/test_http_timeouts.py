"""The read and idle timeouts of the HTTP channel, on a clock (the timing logic alone).

The same behaviour is checked on a real daemon over real sockets in
tests/integration/test_slow_clients.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mirrorbits.config import parse_config
from mirrorbits.web.site import RedirectorSite

PEER = IPv4Address("TCP", "127.0.0.1", 4000)
FAST = b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"  # answered by the channel itself
GENERAL = b"GET /general HTTP/1.1\r\nHost: x\r\n\r\n"  # answered through twisted.web


class _Answers(Resource):
    """A leaf answering /fast from the channel, /general through twisted.web, /slow later."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Request] = []

    def render(self, request: Request) -> bytes | int:
        if request.path == b"/slow":
            self.pending.append(request)
            return NOT_DONE_YET
        request.setResponseCode(302)
        return b""

    def answer_head(self, head: Any, date: bytes) -> bytes | None:
        return b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n" if head.path == b"/fast" else None


class _Connection:
    def __init__(self, site: RedirectorSite) -> None:
        self.transport = StringTransport(peerAddress=PEER)
        self.channel = site.buildProtocol(PEER)
        self.channel.makeConnection(self.transport)

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)


def _site(clock: Clock, timeout: float = 10.0) -> tuple[RedirectorSite, _Answers]:
    resource = _Answers()
    return RedirectorSite(resource, reactor=clock, read_timeout=lambda: timeout), resource


def test_half_a_request_line_is_closed_at_the_read_timeout() -> None:
    clock = Clock()
    site, _ = _site(clock)
    client = _Connection(site)
    client.send(b"GET /fa")
    clock.advance(9.9)
    assert not client.closed
    clock.advance(0.2)
    assert client.closed and client.transport.value() == b""  # no answer, like the reference


def test_a_byte_at_a_time_does_not_push_the_deadline_back() -> None:
    clock = Clock()
    site, _ = _site(clock)
    client = _Connection(site)
    for byte in GENERAL[:-2]:  # never the final CRLF
        if client.closed:
            break
        client.send(bytes((byte,)))
        clock.advance(1.0)
    assert client.closed
    assert clock.seconds() == 10.0


def test_idle_keep_alive_connection_closes_after_the_idle_timeout() -> None:
    clock = Clock()
    site, _ = _site(clock)
    for request in (FAST, GENERAL):
        client = _Connection(site)
        clock.advance(5)
        client.send(request)
        assert client.transport.value().startswith(b"HTTP/1.1 302 ")
        clock.advance(9.9)  # 14.9 s after the connection: the idle time counts from the answer
        assert not client.closed
        clock.advance(0.2)
        assert client.closed


def test_the_next_request_has_its_own_deadline_from_its_first_byte() -> None:
    clock = Clock()
    site, _ = _site(clock)
    for first in (FAST, GENERAL):
        client = _Connection(site)
        client.send(first)
        clock.advance(8)
        client.send(b"GET /ge")  # the start of the next request, 8 s into the idle time
        clock.advance(9.9)
        assert not client.closed
        for _ in range(3):  # more bytes do not help
            client.send(b"n")
        clock.advance(0.2)
        assert client.closed


def test_many_requests_on_one_connection_each_restart_the_idle_time() -> None:
    clock = Clock()
    site, _ = _site(clock)
    client = _Connection(site)
    for index in range(20):
        clock.advance(9)
        client.send(FAST if index % 2 else GENERAL)
        assert not client.closed
    assert client.transport.value().count(b"HTTP/1.1 302 ") == 20


def test_no_timer_runs_while_a_request_is_being_answered() -> None:
    clock = Clock()
    site, resource = _site(clock)
    client = _Connection(site)
    client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(60)
    assert not client.closed
    request = resource.pending.pop()
    request.write(b"late")
    request.finish()
    clock.advance(9.9)
    assert not client.closed
    clock.advance(0.2)
    assert client.closed


def test_the_configured_timeout_applies_to_new_connections() -> None:
    clock = Clock()
    value = [2.5]
    resource = _Answers()
    site = RedirectorSite(resource, reactor=clock, read_timeout=lambda: value[0])
    early = _Connection(site)
    value[0] = 30.0  # a reload
    late = _Connection(site)
    clock.advance(2.6)
    assert early.closed and not late.closed
    clock.advance(27.5)
    assert late.closed


def test_timeouts_are_not_logged_per_connection() -> None:
    clock = Clock()
    site, _ = _site(clock)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        clients = [_Connection(site) for _ in range(5)]
        clock.advance(11)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert all(client.closed for client in clients)
    assert events == []


def test_the_daemon_wires_the_default_and_the_configured_value(tmp_path: Path) -> None:
    """The timeout each new connection of the daemon's own site gets, read back."""
    from mirrorbits.daemon import build_daemon

    for text, expected in (("", 10.0), ("HTTPReadTimeout: 2.5\n", 2.5)):
        config, warnings = parse_config(f"Repository: {tmp_path}\n{text}")
        assert warnings == []
        daemon = build_daemon(config=config, config_path=None, warnings=[],
                              reactor=MemoryReactorClock(), monitor=False, debug=False,
                              argv=[])
        channel = daemon.upgrader.http.factory.buildProtocol(PEER)
        assert (channel.timeOut, channel.read_timeout, channel.idle_timeout) == (
            expected, expected, expected)
