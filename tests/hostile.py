"""What the hostile mirrors (``tests/hostile_http.py``, ``tests/hostile_ftp.py``) share: each is
its own process, ``python -m tests.hostile_<kind> MODE HOST PORT REPORT``, one thread a
connection, and appends to ``REPORT`` one line a connection (or listing) with the bytes it
managed to send, so a test can tell how much the client read before giving up."""

from __future__ import annotations

import socketserver
import sys
import threading
from typing import ClassVar


class Reporting:
    """The mode given on the command line, and where the bytes sent are reported."""

    mode: ClassVar[str] = ""
    report: ClassVar[str] = ""
    lock: ClassVar[threading.Lock] = threading.Lock()

    def record_sent(self, sent: int) -> None:
        with self.lock, open(self.report, "a") as report:
            report.write(f"{sent}\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(handler: type[socketserver.BaseRequestHandler]) -> None:
    """Serve ``handler`` (a :class:`Reporting` too) on the command line's address, forever."""
    assert issubclass(handler, Reporting)
    mode, host, port, report = sys.argv[1:5]
    handler.mode, handler.report = mode, report
    with _Server((host, int(port)), handler) as server:
        server.serve_forever()
