"""Replies of the Redis protocol (RESP2) read from a buffer, whole replies at a time: what
the pub/sub subscriber reads instead of txredisapi's parser, which pauses the connection
and waits a reactor turn after every string (three turns per message, the rest of the
buffer copied each time: most of a worker's time in an invalidation storm).

Bulk strings are decoded as UTF-8 (invalid bytes replaced), as the connections are set up
(:func:`mirrorbits.store.connection.redis_factory`); integers are ``int``; an error reply
is a :class:`txredisapi.ResponseError`, as txredisapi hands it on.
"""

from __future__ import annotations

import re

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
    head = _HEAD(data, pos)
    if head is None:
        _refuse_ended(data, pos + len(MESSAGE))
        return None
    start = head.end()
    end = start + int(head.group(1))
    tail = _TAIL(data, end)
    if tail is None:
        _refuse_ended(data, end + 2)
        return None
    payload = tail.end()
    stop = payload + int(tail.group(1))
    if stop + 2 > len(data):
        return None
    if data[stop:stop + 2] != _CRLF:
        raise ProtocolError("a message's string is not ended by CRLF")
    channel = data[start:end]
    name = _CHANNELS.get(channel)
    if name is None:
        name = channel.decode("utf-8", "replace")
        if len(_CHANNELS) < 64:
            _CHANNELS[channel] = name
    return name, data[payload:stop].decode("utf-8", "replace"), stop + 2


_HEAD = re.compile(re.escape(MESSAGE) + rb"\$(\d{1,10})\r\n").match
_TAIL = re.compile(rb"\r\n\$(\d{1,10})\r\n").match
_CHANNELS: dict[bytes, str] = {}  # the channels' names, decoded once


def _refuse_ended(data: bytes, pos: int) -> None:
    """:class:`ProtocolError` if the line at ``pos``, which was not what was expected there,
    is whole (else it may still become it)."""
    if data.find(_CRLF, pos) >= 0:
        raise ProtocolError("a message's part is not a string")


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
