"""The subscriber's own parsing of pub/sub messages: whatever the chunks the bytes come in,
every message is delivered once and in order, and every other reply reaches txredisapi whole
(its parser's pause between strings is driven by a :class:`Clock` here; the real connection
is tested in tests/integration/test_store_pubsub.py)."""

from __future__ import annotations

from twisted.internet.task import Clock

from mirrorbits.store.pubsub import _Subscriber, frame_end, message_at


class Transport:
    disconnecting = False

    def __init__(self) -> None:
        self.paused = 0

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def loseConnection(self) -> None:
        pass


def message(channel: str, payload: str) -> bytes:
    c, p = channel.encode(), payload.encode()
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(c), c, len(p), p)


SUBSCRIBED = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nchan1\r\n:1\r\n"
PONG = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
STREAM = (SUBSCRIBED + message("chan1", "/a b") + PONG + b"+OK\r\n"
          + message("_mirrorbits_file_update", "/é.txt") + b"-ERR nope\r\n"
          + message("chan1", "") + b":7\r\n" + message("chan1", "last"))
EXPECTED = [("chan1", "/a b"), ("_mirrorbits_file_update", "/é.txt"), ("chan1", ""),
            ("chan1", "last")]


def feed(chunks: list[bytes]) -> tuple[list[tuple[str, str]], list[object]]:
    clock = Clock()
    subscriber = _Subscriber()
    subscriber.callLater = clock.callLater  # type: ignore[method-assign]
    subscriber.transport = Transport()
    got: list[tuple[str, str]] = []
    subscriber.deliver = lambda channel, text: got.append((channel, text))
    for chunk in chunks:
        subscriber.dataReceived(chunk)
        for _ in range(50):  # txredisapi's turns between the strings of a reply
            clock.advance(0)
    assert subscriber.received_bytes == sum(map(len, chunks))
    return got, list(subscriber.replyQueue.pending)


def test_frames_are_measured_and_messages_recognised() -> None:
    assert frame_end(STREAM, 0) == len(SUBSCRIBED)
    assert frame_end(PONG, 0) == len(PONG) and frame_end(PONG[:-1], 0) is None
    assert frame_end(b"*2\r\n*1\r\n:1\r\n$-1\r\n", 0) == 17
    whole = message("c", "m")
    assert message_at(whole, 0) == (len(whole), b"c", b"m")
    assert message_at(whole[:-1], 0) is None and message_at(PONG, 0) is None


def test_every_split_delivers_each_message_once_in_order() -> None:
    for cut in range(1, len(STREAM)):
        got, replies = feed([STREAM[:cut], STREAM[cut:]])
        assert got == EXPECTED, cut
        assert replies[0] == ["pong", ""] and replies[1] == "OK", cut
        assert "nope" in str(replies[2]) and replies[3] == 7, cut
    got, replies = feed([STREAM[i:i + 1] for i in range(len(STREAM))])
    assert got == EXPECTED and len(replies) == 4
