"""The baseline: the cheapest twisted.web answer a redirector could give (a fixed 302).

Usage: ``python -m bench.redirect.bare PORT [PROCESSES]`` (listens on 127.0.0.1 until
terminated). With PROCESSES > 1 the listening socket is made once and shared by that many
processes (forked), as the daemon's ``Workers`` share theirs: each process accepts one
connection per wake-up, as a worker does. (With Twisted's burst of up to 100 accepts per
wake-up, the first process awake took 41 to 50 of the bench's 50 connections: the baseline
ran mostly as one busy process against the daemon's two.)
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from twisted.internet import tcp
from twisted.web.resource import Resource
from twisted.web.server import Request, Site


class BareRedirect(Resource):
    """A leaf answering every request with ``302 Location: http://x/`` and an empty body."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.redirect(b"http://x/")
        return b""


class QuietSite(Site):
    """A Site that does not log each request (as the daemon's does not)."""

    def log(self, request: object) -> None:
        """No access log."""


class OneAcceptPort(tcp.Port):
    """A TCP port taking one connection per wake-up, so that processes sharing the socket
    share the connections (Twisted raises ``numberAccepts`` to take bursts at once)."""

    @property
    def numberAccepts(self) -> int:
        return 1

    @numberAccepts.setter
    def numberAccepts(self, value: int) -> None:
        pass


def main(argv: list[str]) -> None:
    port = int(argv[1])
    processes = int(argv[2]) if len(argv) > 2 else 1
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    children = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for child in children:
            os.kill(child, signal.SIGTERM)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    from twisted.internet import reactor

    if processes > 1:
        port = OneAcceptPort._fromListeningDescriptor(
            reactor, listener.fileno(), socket.AF_INET, QuietSite(BareRedirect()))
        port.startListening()
    else:
        reactor.adoptStreamPort(  # type: ignore[attr-defined]
            listener.fileno(), socket.AF_INET, QuietSite(BareRedirect()))
    reactor.run(installSignalHandlers=False)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv)
