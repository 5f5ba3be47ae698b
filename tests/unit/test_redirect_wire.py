"""The channel's redirect bytes (:class:`RedirectWire`) are exactly ``wire(respond(...))``."""

from __future__ import annotations

from typing import cast

import attrs
import pytest

from mirrorbits.config import Config
from mirrorbits.web.decision import Download, Redirect
from mirrorbits.web.quickhttp import read_simple_request
from mirrorbits.web.respond import RedirectWire, respond, wire

DATE = b"Fri, 04 Dec 2026 22:28:35 GMT"
SERVER = b"Mirrorbits/v0.1.0"
LINKS = [b"<https://b.example.org/f.iso>; rel=duplicate; pri=1; geo=fr",
         b"<http://c.example.org/f.iso>; rel=duplicate; pri=2; geo="]
FILE_HEADERS = ((b"Link", b'<f.iso?meta4>; rel=describedby; type="application/metalink4+xml"'),
                (b"Digest", b"SHA-256=abc="))


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize("links", [[], LINKS[:1], LINKS])
@pytest.mark.parametrize("file_headers", [(), FILE_HEADERS])
def test_the_pieces_give_the_serializers_bytes(method: bytes, links: list[bytes],
                                               file_headers: tuple[tuple[bytes, bytes], ...]
                                               ) -> None:
    config = Config()
    head = read_simple_request(method + b" /f.iso HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.1")
    assert head is not None
    redirect = Redirect(b"https://a.example.org/f.iso", links, cast(Download, None),
                        file_headers)
    expected = wire(respond(redirect, head, config, SERVER), DATE)
    assert RedirectWire(config, SERVER, method == b"HEAD").answer(redirect, DATE) == expected


def test_not_cut_for_gzip() -> None:
    with pytest.raises(AssertionError):
        RedirectWire(attrs.evolve(Config(), gzip=True), SERVER, False)
