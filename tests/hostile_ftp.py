"""A hostile FTP mirror, run as its own process: ``python -m tests.hostile_ftp MODE HOST PORT
REPORT``.

It logs anyone in, advertises MLST and MDTM, and answers ``MLSD`` of any directory with

* ``endless``: file lines without end (stopped after :data:`ENDLESS_SECONDS`);
* ``stall``: ten lines, then silence on both connections, the data connection left open;
* ``names``: a few files whose names hold control characters or are too long, and good ones;
* ``chatty``: a greeting whose continuation lines never end (stopped after
  :data:`ENDLESS_SECONDS`).

After each listing, the bytes it managed to send are appended to ``REPORT`` (one line;
``tests/hostile.py``).
"""

from __future__ import annotations

import socket
import socketserver
import time
from collections.abc import Iterator

from tests.hostile import Reporting, serve

ENDLESS_SECONDS = 60.0
STALL_SECONDS = 120.0
FACTS = b"type=file;size=1;modify=20230606083000;"
NAMES = [b"ok.txt", b"esc\x1b[31mred.txt", b"bell\x07.txt", b"c1\xc2\x9b.txt",
         b"tab\there.txt", b"x" * 5000, b"last.txt"]


class _Control(Reporting, socketserver.StreamRequestHandler):

    def handle(self) -> None:
        self.connection.settimeout(STALL_SECONDS + 30)
        self.passive: socket.socket | None = None
        if self.mode == "chatty":
            self.chatter()
            return
        self.say(b"220 hostile mirror")
        for raw in self.rfile:
            command, _, _argument = raw.strip().partition(b" ")
            verb = command.upper()
            if verb == b"USER":
                self.say(b"331 any password")
            elif verb in (b"PASS", b"TYPE", b"CWD"):
                self.say(b"230 ok" if verb == b"PASS" else b"250 ok")
            elif verb == b"FEAT":
                self.say(b"211-Features\r\n MLST type*;size*;modify*;\r\n MDTM\r\n211 End")
            elif verb == b"PASV":
                self.open_passive()
            elif verb in (b"MLSD", b"LIST"):
                self.send_listing()
            elif verb == b"QUIT":
                self.say(b"221 bye")
                return
            else:
                self.say(b"502 not here")

    def chatter(self) -> None:
        deadline = time.monotonic() + ENDLESS_SECONDS
        sent = 0
        try:
            while time.monotonic() < deadline:
                piece = b"220-welcome, and welcome again\r\n" * 1000
                self.wfile.write(piece)
                sent += len(piece)
        except OSError:
            pass
        self.record_sent(sent)

    def say(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")
        self.wfile.flush()

    def open_passive(self) -> None:
        host = self.server.server_address[0]
        self.passive = socket.create_server((host, 0))
        port = self.passive.getsockname()[1]
        numbers = host.replace(".", ",") + f",{port >> 8},{port & 0xFF}"
        self.say(f"227 Entering Passive Mode ({numbers})".encode())

    def send_listing(self) -> None:
        assert self.passive is not None
        self.say(b"150 here it comes")
        self.passive.settimeout(10)
        data, _ = self.passive.accept()
        self.passive.close()
        sent = 0
        try:
            for piece in self.lines():
                data.sendall(piece)
                sent += len(piece)
        except OSError:
            pass  # the client gave up
        self.record_sent(sent)
        if self.mode == "stall":
            time.sleep(STALL_SECONDS)
        data.close()
        self.say(b"226 done")

    def lines(self) -> Iterator[bytes]:
        if self.mode == "names":
            yield b"".join(FACTS + b" " + name + b"\r\n" for name in NAMES)
            return
        count = 10 if self.mode == "stall" else 10**12
        deadline = time.monotonic() + ENDLESS_SECONDS
        batch = 1000
        for start in range(0, count, batch):
            if time.monotonic() > deadline:
                return
            yield b"".join(FACTS + b" f%d\r\n" % i for i in range(start, min(start + batch,
                                                                               count)))


if __name__ == "__main__":
    serve(_Control)
