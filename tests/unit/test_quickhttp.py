"""Which requests the channel may answer itself: exactly the ordinary ones."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirrorbits.web.quickhttp import _FRAMING, MAX_HEADERS, MAX_SIZE, read_simple_request

PEER = "192.0.2.7"


def test_an_ordinary_request_is_read_with_lower_case_names_and_trimmed_values() -> None:
    head = read_simple_request(
        b"GET /pool/a%20b.iso?https=1&x HTTP/1.1\r\nHost: example.org\r\n"
        b"X-Forwarded-For:  1.2.3.4 \t\r\nUser-Agent: curl/8\r\nAccept-Encoding:\r\n\r\n", PEER)
    assert head is not None
    assert head.method == b"GET"
    assert head.uri == b"/pool/a%20b.iso?https=1&x"
    assert head.path == b"/pool/a%20b.iso"
    assert head.args == {b"https": [b"1"], b"x": [b""]}
    assert head.getHeader(b"x-forwarded-for") == b"1.2.3.4"
    assert head.getHeader(b"accept-encoding") == b""
    assert head.getHeader(b"range") is None
    assert head.client_host == PEER
    head = read_simple_request(b"GET /a HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n", PEER)
    assert head is not None and head.getHeader(b"connection") == b"Keep-Alive"
    head = read_simple_request(b"HEAD / HTTP/1.1\r\n\r\n", PEER)
    assert head is not None and head.method == b"HEAD" and head.headers == {}


@pytest.mark.parametrize("data", [
    b"GET /a HTTP/1.1\r\nHost: x\r\n",  # incomplete
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n",  # pipelined
    b"GET /a HTTP/1.1\r\n\r\nGET",  # the start of a second request
    b"POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"get /a HTTP/1.1\r\n\r\n",
    b"GET /a HTTP/1.0\r\n\r\n",
    b"GET http://x/a HTTP/1.1\r\n\r\n",  # absolute form
    b"GET * HTTP/1.1\r\n\r\n",
    b"GET /a b HTTP/1.1\r\n\r\n",
    b"GET  /a HTTP/1.1\r\n\r\n",
    b"GET /a\x7f HTTP/1.1\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",  # repeated
    b"GET /a HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",  # obsolete folding
    b"GET /a HTTP/1.1\r\nBad Name: 1\r\n\r\n",
    b"GET /a HTTP/1.1\r\n: empty\r\n\r\n",
    b"GET /a HTTP/1.1\r\nNo-Colon\r\n\r\n",
    b"GET /a HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
    b"GET /a HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
    b"GET /a HTTP/1.1\nHost: x\n\n",  # bare line feeds
    b"GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /a HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
    b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /a HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
    b"GET /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    b"GET /a HTTP/1.1\r\n" + b"X-Long: " + b"a" * MAX_SIZE + b"\r\n\r\n",
    b"GET /a HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n",
])
def test_anything_unusual_is_left_to_twisted(data: bytes) -> None:
    assert read_simple_request(data, PEER) is None


_LINE_REQUEST = re.compile(rb"(GET|HEAD) (/[\x21-\x7e]*) HTTP/1\.1")
_LINE_HEADER = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\x20-\x7e\t\x80-\xff]*?)[ \t]*")


def _line_by_line(data: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]] | None:
    """The grammar read one line at a time (the reader's first form): method, URI, headers."""
    if len(data) > MAX_SIZE or data.find(b"\r\n\r\n") != len(data) - 4:
        return None
    lines = data[:-4].split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        return None
    start = _LINE_REQUEST.fullmatch(lines[0])
    if start is None:
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        match = _LINE_HEADER.fullmatch(line)
        if match is None:
            return None
        name, value = match[1].lower(), match[2]
        if name in headers or name in _FRAMING:
            return None
        if name == b"connection" and value.lower() != b"keep-alive":
            return None
        headers[name] = value
    return start[1], start[2], headers


_PIECES = st.sampled_from([
    b"GET", b"HEAD", b"POST", b" ", b"  ", b"\t", b"/", b"/a", b"?x=1", b"HTTP/1.1", b"HTTP/1.0",
    b"\r\n", b"\r", b"\n", b":", b": ", b"Host", b"X-A", b"Connection", b"keep-alive",
    b"Keep-Alive", b"close", b"Content-Length", b"0", b"Bad Name", b"\x00", b"\x7f", b"\xe9",
    b"v", b"a b", b"\r\n\r\n",
])


@given(st.lists(_PIECES, max_size=24).map(b"".join))
def test_the_one_match_reader_accepts_what_the_line_grammar_accepts(data: bytes) -> None:
    for candidate in (data, b"GET /a HTTP/1.1\r\n" + data, b"GET /a HTTP/1.1\r\nX: 1\r\n" + data):
        head = read_simple_request(candidate, PEER)
        expected = _line_by_line(candidate)
        got = None if head is None else (head.method, head.uri, head.headers)
        assert got == expected


def test_the_header_count_limit_is_the_line_grammars() -> None:
    for count in (MAX_HEADERS - 1, MAX_HEADERS, MAX_HEADERS + 1):
        data = (b"GET /a HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(count))
                + b"\r\n")
        assert (read_simple_request(data, PEER) is not None) == (count <= MAX_HEADERS)
        assert (_line_by_line(data) is not None) == (count <= MAX_HEADERS)
