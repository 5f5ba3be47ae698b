"""What a mirror listing may cost and the names it may give (mirrorbits.scan.bounds)."""

from __future__ import annotations

import pytest

from mirrorbits.logs import Logger
from mirrorbits.scan.bounds import (
    MAX_LOGGED_SKIPS,
    ScanBounds,
    SkipTally,
    has_control_characters,
    name_problem,
)
from tests.logcapture import captured_log


def test_skipped_lines_are_logged_then_summarized_by_reason() -> None:
    tally = SkipTally(Logger(namespace="test.bounds"), "m1", "rsync")
    with captured_log("test.bounds") as lines:
        for number in range(MAX_LOGGED_SKIPS + 5):
            tally.skip(b"garbage %d" % number, "not a listing line")
        tally.skip(b"", "line too long")
        tally.summarize()
    assert len(lines) == MAX_LOGGED_SKIPS + 1
    assert lines[0] == "[m1] Skipping an rsync line (not a listing line): b'garbage 0'"
    assert lines[-1] == ("[m1] 26 rsync lines skipped: 25 not a listing line, "
                         "1 line too long")
    assert tally.total == 26


def test_nothing_skipped_says_nothing() -> None:
    tally = SkipTally(Logger(namespace="test.bounds"), "m1", "rsync")
    with captured_log("test.bounds") as lines:
        tally.summarize()
    assert lines == []


@pytest.mark.parametrize(("path", "odd"), [
    ("/ok.txt", False), ("/tab\there.txt", False), ("/gu\u00eda.pdf", False),
    ("/esc\x1b[31m.txt", True), ("/a\nb", True), ("/del\x7f", True), ("/c1\x9b", True),
    ("/nul\x00", True),
])
def test_control_characters(path: str, odd: bool) -> None:
    assert has_control_characters(path) is odd


def test_name_length_counts_utf8_bytes() -> None:
    assert name_problem("/" + "a" * 4095) is None
    assert name_problem("/" + "a" * 4096) == "name longer than 4096 bytes"
    assert name_problem("/" + "\u00e9" * 2047) is None  # 4095 bytes
    assert name_problem("/" + "\u00e9" * 2048) == "name longer than 4096 bytes"


def test_messages() -> None:
    bounds = ScanBounds(max_entries=10, stall=2.5)
    assert bounds.too_many("ftp") == (
        "ftp: more than 10 entries listed (MaxScanEntries), scan abandoned")
    assert bounds.stalled("rsync") == "rsync: nothing received for 2.5 s, scan abandoned"
