"""The channel's answers go straight to the socket when nothing waits (``send_now``), and
through the transport's buffer otherwise, in order."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor, StringTransport

from mirrorbits.web.site import send_now


def server_transport() -> tuple[tcp.Server, socket.socket, MemoryReactor]:
    ours, theirs = socket.socketpair()
    reactor = MemoryReactor()
    transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 40000),
                           SimpleNamespace(_realPortNumber=8080), 1, reactor)
    return transport, theirs, reactor


def read_all(peer: socket.socket, size: int) -> bytes:
    got = b""
    while len(got) < size:
        got += peer.recv(size - len(got))
    return got


def test_an_answer_the_kernel_takes_whole_never_waits_for_the_reactor() -> None:
    transport, peer, reactor = server_transport()
    answer = b"HTTP/1.1 302 Found\r\n\r\n"
    send_now(transport, answer)
    peer.settimeout(5)
    assert read_all(peer, len(answer)) == answer
    assert transport not in reactor.getWriters()  # nothing buffered, no write watch
    peer.close()
    transport.socket.close()


def test_what_the_kernel_does_not_take_is_buffered_and_later_bytes_follow_it() -> None:
    transport, peer, reactor = server_transport()
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 4096  # 1 MiB: more than the socket takes at once
    send_now(transport, big)
    assert transport in reactor.getWriters()
    send_now(transport, b"next answer")  # must not overtake the buffered rest
    peer.settimeout(5)
    expected = big + b"next answer"
    got = b""
    while len(got) < len(expected):
        transport.doWrite()
        got += peer.recv(1 << 20)
    assert got == expected
    peer.close()
    transport.socket.close()


def test_a_broken_connection_is_left_to_the_transport() -> None:
    transport, peer, reactor = server_transport()
    peer.close()
    send_now(transport, b"x" * 100)  # no exception: the transport reports the loss
    assert transport in reactor.getWriters() or not transport.connected
    transport.socket.close()


def test_other_transports_are_written_as_usual() -> None:
    transport = StringTransport()
    send_now(transport, b"answer")
    assert transport.value() == b"answer"
