"""A hostile HTTP mirror, run as its own process: ``python -m tests.hostile_http MODE HOST PORT
REPORT``.

Modes: ``huge`` answers every request (HEAD included) with a 200 MiB body, streamed;
``headers`` sends header lines without end; ``redirect=<url>`` answers ``302`` to ``<url>``.
After each connection, the number of bytes it managed to send is appended to ``REPORT``
(one line; ``tests/hostile.py``).
"""

from __future__ import annotations

import socket
import socketserver

from tests.hostile import Reporting, serve

HUGE = 200 * 1024 * 1024
CHUNK = 64 * 1024
MAX_REQUEST = 64 * 1024


class _Hostile(Reporting, socketserver.BaseRequestHandler):

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST:
            data = sock.recv(4096)
            if not data:
                return
            head += data
        sent = 0
        try:
            for piece in self._answer():
                sock.sendall(piece)
                sent += len(piece)
        except OSError:
            pass  # the client gave up: what it took is what counts
        self.record_sent(sent)

    def _answer(self) -> object:
        if self.mode.startswith("redirect="):
            location = self.mode.partition("=")[2]
            yield (f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n").encode()
            return
        if self.mode == "headers":
            yield b"HTTP/1.1 200 OK\r\n"
            line = b"X-Filler: " + b"y" * 1000 + b"\r\n"
            for _ in range(HUGE // len(line)):
                yield line
            return
        yield (f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\nConnection: close\r\n\r\n"
               ).encode()
        chunk = (b"1700000000 " * (CHUNK // 11 + 1))[:CHUNK]
        for _ in range(HUGE // CHUNK):
            yield chunk


if __name__ == "__main__":
    serve(_Hostile)
