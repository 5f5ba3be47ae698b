"""Pure parts of the rsync scanner: command line, exit statuses, line buffering (spec §6.2)."""

from __future__ import annotations

import pytest
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.python.failure import Failure

from mirrorbits.scan.rsync import (
    LineBuffer,
    RsyncProtocol,
    ScanError,
    exit_error,
    rsync_command,
)
from mirrorbits.scan.rsync_listing import ListedFile


def test_plain_rsync_url() -> None:
    command = rsync_command("rsync://mirror.example.org/debian/")
    assert command.executable == "rsync"
    assert command.args == ("-r", "--no-motd", "--exclude=.~tmp~/", "--timeout=30",
                            "--contimeout=30", "rsync://mirror.example.org/debian/")
    assert command.env == {"TZ": "UTC"}


def test_rsyncs_url_uses_rsync_ssl() -> None:
    command = rsync_command("rsyncs://u:p@mirror.example.org:874/debian/")
    assert command.executable == "rsync-ssl"
    assert command.args == ("-r", "--no-motd", "--exclude=.~tmp~/", "--timeout=60",
                            "rsync://mirror.example.org:874/debian/")
    assert command.env == {"TZ": "UTC", "USER": "u", "RSYNC_PASSWORD": "p"}


@pytest.mark.parametrize(("url", "env", "clean"), [
    ("rsync://user@h/m/", {"USER": "user"}, "rsync://h/m/"),
    ("rsync://user:@h/m/", {"USER": "user", "RSYNC_PASSWORD": ""}, "rsync://h/m/"),
    ("rsync://:pw@h/m/", {"RSYNC_PASSWORD": "pw"}, "rsync://h/m/"),
    ("rsync://u%20x:p%3Aw@h@[::1]:873/m/", {"USER": "u x", "RSYNC_PASSWORD": "p:w@h"},
     "rsync://[::1]:873/m/"),
])
def test_credentials_move_to_the_environment(url: str, env: dict[str, str], clean: str) -> None:
    command = rsync_command(url)
    assert command.url == clean
    assert command.args[-1] == clean
    assert command.env == {"TZ": "UTC", **env}


@pytest.mark.parametrize("url", ["ftp://h/", "http://h/", "RSYNC://h/", "h/m/", ""])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ScanError, match="does not start with rsync:// or rsyncs://"):
        rsync_command(url)


@pytest.mark.parametrize(("code", "message"), [
    (0, None), (23, None), (24, None),
    (5, "rsync: Error starting client-server protocol"),
    (10, "rsync: Error in socket I/O"),
    (11, "rsync: Error in file I/O"),
    (30, "rsync: Timeout in data send/receive"),
    (35, "Timeout waiting for daemon connection"),
    (1, "rsync: exit status 1"),
    (255, "rsync: exit status 255"),
])
def test_exit_statuses(code: int, message: str | None) -> None:
    assert exit_error(code) == message


def test_line_buffer_joins_chunks_and_keeps_multibyte_characters() -> None:
    buffer = LineBuffer()
    text = "a\nguía\nlast".encode()
    lines = [line for byte in range(len(text)) for line in buffer.feed(text[byte:byte + 1])]
    assert lines == [b"a", "guía".encode()]
    assert buffer.flush() == [b"last"]
    assert buffer.flush() == []


def test_line_buffer_drops_overlong_lines_and_recovers() -> None:
    buffer = LineBuffer(limit=10)
    assert buffer.feed(b"ok\n" + b"x" * 8) == [b"ok"]
    assert buffer.feed(b"y" * 8) == []
    assert buffer.feed(b"z" * 30) == []
    assert buffer.feed(b"tail\nfine\n" + b"w" * 11 + b"\nend") == [b"fine"]
    assert buffer.flush() == [b"end"]
    assert buffer.overlong == 2


def test_line_buffer_overlong_last_line_is_not_flushed() -> None:
    buffer = LineBuffer(limit=4)
    assert buffer.feed(b"123456") == []
    assert buffer.flush() == []
    assert buffer.overlong == 1


def run_protocol(chunks: list[bytes], reason: Failure) -> tuple[list[ListedFile],
                                                                 list[tuple[bytes, str]], int]:
    files: list[ListedFile] = []
    skipped: list[tuple[bytes, str]] = []
    codes: list[int] = []
    protocol = RsyncProtocol(files.append, lambda line, why: skipped.append((line, why)))
    protocol.ended.addCallback(codes.append)
    for chunk in chunks:
        protocol.outReceived(chunk)
    protocol.errReceived(b"rsync: opendir \"/x\" failed\nother\n")
    protocol.processEnded(reason)
    assert protocol.opendir_errors == ['rsync: opendir "/x" failed']
    assert list(protocol.stderr_tail) == ['rsync: opendir "/x" failed', "other"]
    return files, skipped, codes[0]


def test_protocol_parses_split_lines_and_reports_bad_ones() -> None:
    listing = (b"drwxr-xr-x 4,096 2023/06/06 08:30:00 .\n"
               b"-rw-r--r-- 1,000 2023/06/06 08:30:00 a\n"
               b"junk\n"
               b"-rw-r--r-- 2 2023/06/06 08:30:00 b")
    chunks = [listing[i:i + 7] for i in range(0, len(listing), 7)]
    files, skipped, code = run_protocol(chunks, Failure(ProcessDone(0)))
    assert [(f.path, f.size) for f in files] == [("/a", 1000), ("/b", 2)]
    assert skipped == [(b"junk", "not a listing line")]
    assert code == 0


def test_protocol_exit_code_and_signal() -> None:
    assert run_protocol([], Failure(ProcessTerminated(exitCode=23)))[2] == 23
    assert run_protocol([], Failure(ProcessTerminated(signal=9)))[2] == -9
