"""The rsync listing parser (spec §6.2, §20 item 9, conformance README §6.1 item 1)."""

from __future__ import annotations

import pytest

from mirrorbits.scan.rsync_listing import MAX_SIZE, ListedFile, Skipped, parse_line, unescape_name

NS = 1_000_000_000
T = 1_686_040_200  # 2023-06-06 08:30:00 UTC


def test_regular_file() -> None:
    line = b"-rw-r--r--          3,000 2023/06/06 08:30:00 pool/main/tool.deb"
    assert parse_line(line) == ListedFile("/pool/main/tool.deb", 3000, T * NS)


def test_leading_slash_is_not_doubled() -> None:
    assert parse_line(b"-rw-r--r-- 1 2023/06/06 08:30:00 /a") == ListedFile("/a", 1, T * NS)


@pytest.mark.parametrize("line", [
    b"drwxr-xr-x          4,096 2026/11/25 04:06:17 .",
    b"drwxr-xr-x          4,096 2026/11/25 04:06:17 sub",
    b"lrwxrwxrwx              1 2026/11/25 04:06:17 link",
    b"lrwxrwxrwx              1 2026/11/25 04:06:17 link -> target",
])
def test_directories_and_links_are_skipped_quietly(line: bytes) -> None:
    assert parse_line(line) == Skipped("directory or symbolic link", expected=True)


def test_names_with_spaces_and_lookalike_fields() -> None:
    line = b"-rw-r--r--  12 2023/06/06 08:30:00 media/install image 1,000 2024/01/01 00:00:00 x"
    parsed = parse_line(line)
    assert parsed == ListedFile("/media/install image 1,000 2024/01/01 00:00:00 x", 12, T * NS)


def test_leading_and_trailing_spaces_in_a_name_are_kept() -> None:
    parsed = parse_line(b"-rw-r--r-- 5 2023/06/06 08:30:00   odd name ")
    assert isinstance(parsed, ListedFile)
    assert parsed.path == "/  odd name "


def test_escaped_non_ascii_name_is_decoded() -> None:
    line = (b"-rw-r--r--          3,000 2023/06/06 08:30:00 "
            b"manuals/gu\\#303\\#255a-r\\#303\\#241pida.pdf")
    assert parse_line(line) == ListedFile("/manuals/guía-rápida.pdf", 3000, T * NS)


def test_raw_utf8_name_is_accepted() -> None:
    parsed = parse_line("-rw-r--r-- 1 2023/06/06 08:30:00 café.txt".encode())
    assert isinstance(parsed, ListedFile)
    assert parsed.path == "/café.txt"


def test_escaped_backslash_and_lone_backslashes() -> None:
    assert unescape_name(b"a\\#134#b") == "a\\#b"
    assert unescape_name(b"a\\b\\#9") == "a\\b\\#9"
    assert unescape_name(b"tab\\#011x") == "tab\tx"


def test_invalid_utf8_after_unescaping_is_skipped() -> None:
    assert parse_line(b"-rw-r--r-- 1 2023/06/06 08:30:00 bad\\#377name") == Skipped(
        "name is not valid UTF-8"
    )


def test_escaped_nul_is_skipped() -> None:
    assert parse_line(b"-rw-r--r-- 1 2023/06/06 08:30:00 a\\#000b") == Skipped(
        "name contains a NUL byte"
    )


def test_a_tab_is_kept() -> None:
    parsed = parse_line(b"-rw-r--r-- 1 2023/06/06 08:30:00 tab\\#011here.txt")
    assert isinstance(parsed, ListedFile) and parsed.path == "/tab\there.txt"


def test_names_longer_than_4096_bytes_are_skipped() -> None:
    longest = "d/" * 2047 + "f"  # 4095 bytes, 4096 with the leading /
    assert isinstance(parse_line(b"-rw-r--r-- 1 2023/06/06 08:30:00 " + longest.encode()),
                      ListedFile)
    assert parse_line(b"-rw-r--r-- 1 2023/06/06 08:30:00 " + longest.encode() + b"x") == (
        Skipped("name longer than 4096 bytes"))
    accents = "\u00e9" * 2048  # 4096 bytes of UTF-8 after the /
    assert parse_line(b"-rw-r--r-- 1 2023/06/06 08:30:00 " + accents.encode()) == (
        Skipped("name longer than 4096 bytes"))


def test_huge_sizes() -> None:
    ok = parse_line(b"-rw-r--r-- 9,223,372,036,854,775,807 2023/06/06 08:30:00 big")
    assert ok == ListedFile("/big", MAX_SIZE, T * NS)
    too_big = parse_line(b"-rw-r--r-- 9,223,372,036,854,775,808 2023/06/06 08:30:00 big")
    assert isinstance(too_big, Skipped) and not too_big.expected
    assert "too large" in too_big.reason
    absurd = parse_line(b"-rw-r--r-- " + b"9" * 5000 + b" 2023/06/06 08:30:00 big")
    assert isinstance(absurd, Skipped)


@pytest.mark.parametrize("line", [
    b"",
    b"\x00\x01\x02",
    b"sent 20 bytes  received 30 bytes  100.00 bytes/sec",
    b"total size is 5,000  speedup is 1.00",
    b"-rw-r--r-- 1 2023/06/06 08:30:00",
    b"-rw-r--r-- 1 2023/06/06 08:30:00 ",
    b"-rw-r--r-- -1 2023/06/06 08:30:00 neg",
    b"-rw-r--r-- 1.5 2023/06/06 08:30:00 frac",
    b"-rw-r--r-- ,1 2023/06/06 08:30:00 comma",
    b"-rw-r--r-- 1 23/06/06 08:30:00 short-year",
    b"-rw-r--r-- 1 2023-06-06 08:30:00 dashes",
    b"-rw-r--r-- 1 2023/06/06 8:30:00 short-hour",
    b"-rw-r--r-- 1 2023/06/06\t08:30:00\tno-space-before-name",
    b"@ERROR: Unknown module 'nope'",
    b"x" * 100_000,
])
def test_malformed_lines_are_reported_not_raised(line: bytes) -> None:
    parsed = parse_line(line)
    assert isinstance(parsed, Skipped)
    assert not parsed.expected


@pytest.mark.parametrize("stamp", [
    b"2023/13/01 00:00:00", b"2023/02/29 00:00:00", b"2023/04/31 00:00:00",
    b"2023/06/06 24:00:00", b"2023/06/06 08:60:00", b"2023/06/06 08:30:60",
    b"0000/01/01 00:00:00", b"2023/00/10 00:00:00",
])
def test_invalid_dates(stamp: bytes) -> None:
    assert parse_line(b"-rw-r--r-- 1 " + stamp + b" f") == Skipped("invalid date")


def test_leap_day_and_carriage_return() -> None:
    parsed = parse_line(b"-rw-r--r-- 1 2024/02/29 23:59:59 f\r")
    assert parsed == ListedFile("/f", 1, (1_709_251_199) * NS)


def test_special_files_count_as_files_like_the_reference() -> None:
    parsed = parse_line(b"prw-r--r-- 0 2023/06/06 08:30:00 fifo")
    assert parsed == ListedFile("/fifo", 0, T * NS)
