"""Replies of the Redis protocol (RESP2) read from a buffer, whole replies at a time: what
the pub/sub subscriber reads instead of txredisapi's parser, which pauses the connection
and waits a reactor turn after every string (three turns per message, the rest of the
buffer copied each time: most of a worker's time in an invalidation storm).

Bulk strings are decoded as UTF-8 (invalid bytes replaced), as the connections are set up
(:func:`mirrorbits.store.connection.redis_factory`); integers are ``int``; an error reply
is a :class:`txredisapi.ResponseError`, as txredisapi hands it on.
"""

from __future__ import annotations

import txredisapi

__all__ = ["MESSAGE", "ProtocolError", "read_message", "read_reply"]

#: How a pub/sub ``message`` reply starts (an array of three strings, the first "message").
MESSAGE = b"*3\r\n$7\r\nmessage\r\n"
_CRLF = b"\r\n"


class ProtocolError(ValueError):
    """The data is not RESP2."""


def _length(data: bytes, start: int, end: int) -> int:
    try:
        return int(data[start:end])
    except ValueError:
        raise ProtocolError(f"bad length {data[start:end][:20]!r}") from None


def read_message(data: bytes, pos: int) -> tuple[str, str, int] | None:
    """The ``message`` reply at ``pos`` (``data`` starts with :data:`MESSAGE` there): its
    channel, its payload and where it ends; ``None`` if not all of it is in ``data``."""
    pos += len(MESSAGE)
    strings = []
    for _ in range(2):
        eol = data.find(_CRLF, pos)
        if eol < 0:
            return None
        if data[pos:pos + 1] != b"$":
            raise ProtocolError("a message's part is not a string")
        start = eol + 2
        end = start + _length(data, pos + 1, eol)
        if end + 2 > len(data):
            return None
        if data[end:end + 2] != _CRLF or end < start:
            raise ProtocolError("a message's string is not ended by CRLF")
        strings.append(data[start:end].decode("utf-8", "replace"))
        pos = end + 2
    return strings[0], strings[1], pos


def read_reply(data: bytes, pos: int) -> tuple[object, int] | None:
    """The reply at ``pos`` and where it ends; ``None`` if not all of it is in ``data``."""
    eol = data.find(_CRLF, pos)
    if eol < 0:
        return None
    kind, start = data[pos:pos + 1], eol + 2
    if kind == b"$":
        length = _length(data, pos + 1, eol)
        if length < 0:
            return None, start
        end = start + length
        if end + 2 > len(data):
            return None
        if data[end:end + 2] != _CRLF:
            raise ProtocolError("a string is not ended by CRLF")
        return data[start:end].decode("utf-8", "replace"), end + 2
    if kind == b"*":
        count = _length(data, pos + 1, eol)
        if count < 0:
            return None, start
        items: list[object] = []
        for _ in range(count):
            item = read_reply(data, start)
            if item is None:
                return None
            value, start = item
            items.append(value)
        return items, start
    line = data[pos + 1:eol].decode("utf-8", "replace")
    if kind == b"+":
        return line, start
    if kind == b":":
        return _length(data, pos + 1, eol), start
    if kind == b"-":
        return txredisapi.ResponseError(line), start
    raise ProtocolError(f"unknown reply type {kind!r}")
