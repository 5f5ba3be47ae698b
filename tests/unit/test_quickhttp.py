"""Which requests the channel may answer itself: exactly the ordinary ones."""

from __future__ import annotations

import pytest

from mirrorbits.web.quickhttp import MAX_SIZE, read_simple_request

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
