"""What the headers about a file add to a redirect's serialization (digests, Metalink ``Link``).

A micro-benchmark, stable on a loaded machine (the minimum of repeated runs): ``respond`` +
``wire`` of one redirect with three alternatives, without and with the file's headers, and the
``Accept`` check of the Metalink type that every request without a query makes.

Usage: ``.venv/bin/python bench/redirect/file_headers.py``
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mirrorbits.config import Config  # noqa: E402
from mirrorbits.model import FileInfo, GeoRecord, Mirror  # noqa: E402
from mirrorbits.web.decision import Download, Redirect  # noqa: E402
from mirrorbits.web.digests import file_headers  # noqa: E402
from mirrorbits.web.metalink import CONTENT_TYPE  # noqa: E402
from mirrorbits.web.quickhttp import read_simple_request  # noqa: E402
from mirrorbits.web.respond import respond, wire  # noqa: E402

PATH = "/pool/main/t/tool_2.4.1_amd64.deb"
ROUNDS, NUMBER = 7, 20_000


def main() -> None:
    info = FileInfo(path=PATH, size=1, mod_time_ns=1, sha256="ab" * 32, sha1="cd" * 20)
    download = Download("REDIRECT", 302, info, "192.0.2.1", GeoRecord(), Mirror(), 1.0, False)
    links = [b"<http://mirror%d.example.org/debian%s>; rel=duplicate; pri=%d; geo=fr"
             % (i, PATH.encode(), i) for i in range(1, 4)]
    location = b"http://mirror.example.org/debian" + PATH.encode()
    head = read_simple_request(
        b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", "192.0.2.1")
    assert head is not None
    config = Config()
    plain = Redirect(location, links, download)
    described = Redirect(location, links, download, file_headers(info))

    def answer(redirect: Redirect) -> None:
        wire(respond(redirect, head, config, b"Mirrorbits/0.1"), b"Fri, 04 Dec 2026 20:00:00 GMT")

    def accept_check() -> None:
        accept = head.getHeader(b"accept")
        if accept is not None and accept.find(CONTENT_TYPE) >= 0:
            raise AssertionError

    for name, step in (("redirect without file headers", lambda: answer(plain)),
                       ("redirect with file headers", lambda: answer(described)),
                       ("Accept check", accept_check)):
        best = min(timeit.repeat(step, number=NUMBER, repeat=ROUNDS)) / NUMBER
        print(f"{name:32} {best * 1e6:6.2f} us")


if __name__ == "__main__":
    main()
