"""Recognise the commonest HTTP request, so the channel can answer it without a ``Request``.

A redirector mostly receives one kind of request: a complete ``GET`` or ``HEAD`` of one path,
HTTP/1.1, a few ordinary headers, no body, alone in one read. :func:`read_simple_request`
accepts exactly that and nothing else (None): a body, framing or connection headers, repeated
or folded headers, an unusual request line or anything malformed is left to twisted.web's
parser, which answers it as usual. Pure: bytes in, a :class:`SimpleRequest` out.
"""

from __future__ import annotations

import re
from typing import Final

from mirrorbits.web.paths import parse_query

MAX_SIZE: Final = 8192
MAX_HEADERS: Final = 64

# The request line, then header lines of a token, a colon and visible characters (spaces
# and tabs allowed), then the empty line ending the request: one match checks it all.
_REQUEST: Final = re.compile(
    rb"(GET|HEAD) (/[\x21-\x7e]*) HTTP/1\.1\r\n"
    rb"((?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\x20-\x7e\t\x80-\xff]*\r\n)*)\r\n")
# Headers that change how the request is framed or the connection is handled.
_FRAMING: Final = frozenset((b"content-length", b"transfer-encoding", b"expect", b"upgrade",
                             b"te", b"trailer", b"http2-settings"))


class SimpleRequest:
    """An ordinary request head: a :class:`~mirrorbits.web.head.RequestHead`."""

    __slots__ = ("args", "client_host", "headers", "method", "path", "uri")

    def __init__(self, method: bytes, uri: bytes, headers: dict[bytes, bytes],
                 client_host: str) -> None:
        self.method = method
        self.uri = uri
        path, query, _ = uri.partition(b"?")
        self.path = path
        self.args = parse_query(uri) if query else {}
        self.headers = headers
        self.client_host = client_host

    def getHeader(self, key: bytes) -> bytes | None:
        """The value of header ``key`` (lower-case name), or None."""
        return self.headers.get(key)


def read_simple_request(data: bytes, client_host: str) -> SimpleRequest | None:
    """``data`` as a :class:`SimpleRequest` if it is exactly one ordinary request, else None."""
    if len(data) > MAX_SIZE:
        return None
    request = _REQUEST.fullmatch(data)
    if request is None:
        return None
    lines = request[3].split(b"\r\n")
    lines.pop()  # the header block ends with a line end
    if len(lines) > MAX_HEADERS:
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, _, value = line.partition(b":")  # the name holds no colon: a token
        name = name.lower()
        if name in headers or name in _FRAMING:
            return None
        value = value.strip(b" \t")
        if name == b"connection" and value.lower() != b"keep-alive":  # what browsers send
            return None
        headers[name] = value
    return SimpleRequest(request[1], request[2], headers, client_host)
