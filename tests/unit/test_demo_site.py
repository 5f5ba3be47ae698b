"""The demo mirrors' HTTP site closes idle connections without a log line (timing logic on a
clock; the demo itself runs in tests/integration/test_first_run.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.web.static import File

from mirrorbits.demo import _QuietSite

PEER = IPv4Address("TCP", "127.0.0.1", 4000)


def test_idle_connections_are_closed_without_a_line(tmp_path: Path) -> None:
    clock = Clock()
    site = _QuietSite(File(str(tmp_path)), reactor=clock)
    site.timeOut = 30
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        transports = []
        for _ in range(3):  # a health check's kept-alive connections
            transport = StringTransport(peerAddress=PEER)
            channel = site.buildProtocol(PEER)
            assert channel is not None
            channel.makeConnection(transport)
            transports.append(transport)
        clock.advance(31)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert all(transport.disconnecting for transport in transports)
    assert [event.get("log_format") for event in events] == []
