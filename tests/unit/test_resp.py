"""The subscriber's reading of Redis replies (:mod:`mirrorbits.store.resp`): whatever the
chunks the bytes come in, each reply is read once, whole, in order (the real connection:
tests/integration/test_store_pubsub.py)."""

from __future__ import annotations

import pytest
import txredisapi

from mirrorbits.store.resp import MESSAGE, ProtocolError, read_message, read_reply


def message(channel: str, payload: bytes) -> bytes:
    c = channel.encode()
    return MESSAGE + b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(c), c, len(payload), payload)


SUBSCRIBED = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nchan1\r\n:1\r\n"
PONG = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
STREAM = (SUBSCRIBED + message("chan1", b"/a b") + PONG + b"+OK\r\n"
          + message("_mirrorbits_file_update", "/é\r\n.txt".encode()) + b"-ERR nope\r\n"
          + message("chan1", b"") + b":7\r\n" + b"*2\r\n$-1\r\n*1\r\n:3\r\n"
          + message("chan1", b"\xff bad"))
EXPECTED: list[object] = [
    ["subscribe", "chan1", 1], ("chan1", "/a b"), ["pong", ""], "OK",
    ("_mirrorbits_file_update", "/é\r\n.txt"), "ERR nope", ("chan1", ""), 7, [None, [3]],
    ("chan1", "\ufffd bad"),
]


def read_all(data: bytes) -> tuple[list[object], int]:
    """Every whole reply in ``data`` (messages as ``(channel, payload)``), and where the
    first incomplete one starts."""
    got: list[object] = []
    pos = 0
    while pos < len(data):
        if data.startswith(MESSAGE, pos):
            found = read_message(data, pos)
            if found is None:
                break
            channel, payload, pos = found
            got.append((channel, payload))
            continue
        reply = read_reply(data, pos)
        if reply is None:
            break
        value, pos = reply
        got.append(str(value) if isinstance(value, txredisapi.ResponseError) else value)
    return got, pos


def test_every_split_reads_each_reply_once_in_order() -> None:
    assert read_all(STREAM) == (EXPECTED, len(STREAM))
    for cut in range(len(STREAM)):
        first, pos = read_all(STREAM[:cut])
        rest, end = read_all(STREAM[pos:])
        assert first + rest == EXPECTED, cut
        assert pos + end == len(STREAM), cut


def test_what_is_not_resp_is_refused() -> None:
    for data in (b"?what\r\n", b"$abc\r\nxyz\r\n", b"*x\r\n", b"$3\r\nabcdef\r\n",
                 MESSAGE + b"$1\r\nc\r\n:1\r\n", MESSAGE + b"$x\r\n"):
        with pytest.raises(ProtocolError):
            read_all(data)
