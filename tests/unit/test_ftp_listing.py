"""Pure parsers of the FTP scanner (spec §6.3): URL, FEAT, MDTM, MLSD facts, LIST lines."""

from __future__ import annotations

import calendar

import pytest

from mirrorbits.scan.ftp_listing import (
    DIR,
    FILE,
    DirEntry,
    FtpTarget,
    Skipped,
    decode_name,
    parse_feat,
    parse_ftp_url,
    parse_list_line,
    parse_mdtm,
    parse_mlsd_line,
    parse_timeval,
)

S = 1_000_000_000
MIN = 60 * S
DAY = 86400 * S


def utc(*stamp: int) -> int:
    return calendar.timegm((*stamp, 0, 0, 0)[:9]) * S


NOW = utc(2024, 3, 10, 12, 0, 0) // S


# --- URL --------------------------------------------------------------------------------

def test_url_defaults_to_anonymous_and_port_21() -> None:
    assert parse_ftp_url("ftp://ftp.example.org/pub/debian") == FtpTarget(
        "ftp.example.org", 21, "anonymous", "anonymous", "/pub/debian/")


def test_url_credentials_port_and_escapes() -> None:
    assert parse_ftp_url("ftp://me:p%40ss@127.0.0.1:2121/a%20b/") == FtpTarget(
        "127.0.0.1", 2121, "me", "p@ss", "/a b/")
    assert parse_ftp_url("ftp://me@h/").password == "anonymous"
    assert parse_ftp_url("ftp://h").path == "/"


@pytest.mark.parametrize(("url", "message"), [
    ("rsync://h/x", "rsync://h/x does not start with ftp://"),
    ("ftp:///x", "no host"),
    ("ftp://h:99999/", "invalid port"),
    ("ftp://u:a%0d%0aDELE%20x@h/", "line break or NUL"),
    ("ftp://h/a%0Ab/", "line break or NUL"),
])
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ftp_url(url)


# --- FEAT, MDTM ---------------------------------------------------------------------------

def test_feat() -> None:
    reply = ["211-Features:", " MDTM", " MLST type*;size*;modify*;", " UTF8", "211 End"]
    assert parse_feat(reply) == {"MDTM", "MLST", "UTF8"}
    assert parse_feat(["500 Unknown command"]) == frozenset()
    assert parse_feat(["211 no features"]) == frozenset()


def test_timeval_and_mdtm() -> None:
    assert parse_timeval("20240102030405") == (utc(2024, 1, 2, 3, 4, 5), False)
    assert parse_timeval("20240102030405.25") == (utc(2024, 1, 2, 3, 4, 5) + S // 4, True)
    assert parse_timeval("20240102030405.000") == (utc(2024, 1, 2, 3, 4, 5), False)
    assert parse_mdtm(["213 20240102030405.123"]) == (utc(2024, 1, 2, 3, 4, 5) + 123_000_000,
                                                      True)
    for bad in ("2024010203040", "20241302030405", "20240230000000", "191240102030405", "x"):
        assert parse_timeval(bad) is None
    assert parse_mdtm(["550 no such file"]) is None
    assert parse_mdtm(["213 19700101000000"]) is None  # zero: unknown
    assert parse_mdtm([]) is None


# --- MLSD ---------------------------------------------------------------------------------

def test_mlsd_file_and_dir() -> None:
    assert parse_mlsd_line(b"type=file;size=1234;modify=20240102030405;UNIX.mode=0644; a b.iso\r"
                           ) == DirEntry(b"a b.iso", FILE, 1234, utc(2024, 1, 2, 3, 4, 5), S)
    assert parse_mlsd_line(b"Type=DIR;Modify=20240102030405.5;Unique=801g4; pool") == DirEntry(
        b"pool", DIR, 0, utc(2024, 1, 2, 3, 4, 5) + S // 2, 1_000_000, "801g4")
    # the name is everything after the first space, spaces and ';' included
    entry = parse_mlsd_line("type=file;size=1; café; x ".encode())
    assert isinstance(entry, DirEntry)
    assert decode_name(entry.name) == "café; x "
    # no modify fact: time unknown
    assert parse_mlsd_line(b"type=file;size=0; empty") == DirEntry(b"empty", FILE)


@pytest.mark.parametrize("line", [
    b"type=cdir;modify=20240102030405; .",
    b"type=pdir; ..",
    b"type=OS.unix=symlink;size=3; link",
    b"type=OS.unix=slink:/target; link",
    b"type=file;size=3; .",
])
def test_mlsd_expected_skips(line: bytes) -> None:
    parsed = parse_mlsd_line(line)
    assert isinstance(parsed, Skipped) and parsed.expected


@pytest.mark.parametrize("line", [
    b"",
    b"no facts here",
    b"type=file;size=12",
    b"type=file;size=-1; neg",
    b"type=file;size=99999999999999999999; huge",
    b"type=file;size=1e3; sci",
    b"type=file;junk; name",
    b"type=file;size=1; ",
    b"type=file;size=1; a/b",
    b"type=file;size=1; nul\x00",
    b"\xff\xfe;;;; \x00",
])
def test_mlsd_hostile_lines_are_skipped(line: bytes) -> None:
    parsed = parse_mlsd_line(line)
    assert isinstance(parsed, Skipped) and not parsed.expected


def test_mlsd_bad_modify_means_unknown_time() -> None:
    assert parse_mlsd_line(b"type=file;size=5;modify=yesterday; f") == DirEntry(b"f", FILE, 5)


# --- LIST ---------------------------------------------------------------------------------

def test_unix_line_with_time_is_this_year_or_last() -> None:
    line = b"-rw-r--r--    1 ftp      ftp          1234 Jan 29 03:26 README\r"
    assert parse_list_line(line, NOW) == DirEntry(b"README", FILE, 1234,
                                                  utc(2024, 1, 29, 3, 26, 0), MIN)
    # a date later than tomorrow is last year's
    later = b"-rw-r--r--    1 ftp      ftp          1 Dec 31 23:59 old"
    assert parse_list_line(later, NOW) == DirEntry(b"old", FILE, 1, utc(2023, 12, 31, 23, 59, 0),
                                                   MIN)


def test_unix_line_with_year() -> None:
    line = b"drwxr-xr-x    2 0        0            4096 Mar 02  2021 dir with  spaces"
    assert parse_list_line(line, NOW) == DirEntry(b"dir with  spaces", DIR, 0,
                                                  utc(2021, 3, 2, 0, 0, 0), DAY)


def test_unix_line_variants() -> None:
    # no owner/group columns (ls -g -o), ACL marker, numeric ids, leading space in the name
    assert parse_list_line(b"-rw-r--r--+ 1 4242 Feb  1  2020  lead", NOW) == DirEntry(
        b" lead", FILE, 4242, utc(2020, 2, 1, 0, 0, 0), DAY)
    assert parse_list_line(b"-rw-r--r--   1 1000 1000 7 Feb 01 2020 -dash", NOW) == DirEntry(
        b"-dash", FILE, 7, utc(2020, 2, 1, 0, 0, 0), DAY)
    # a name that looks like more columns
    tricky = b"-rw-r--r-- 1 u g 10 Jan  1  2020 5 Jan  1  2020 x"
    assert parse_list_line(tricky, NOW) == DirEntry(b"5 Jan  1  2020 x", FILE, 10,
                                                    utc(2020, 1, 1, 0, 0, 0), DAY)
    # non-ASCII name, kept as bytes and decoded later
    entry = parse_list_line("-rw-r--r-- 1 u g 3 Jan  1  2020 café.txt".encode(), NOW)
    assert isinstance(entry, DirEntry) and decode_name(entry.name) == "café.txt"


@pytest.mark.parametrize("line", [
    b"lrwxrwxrwx    1 ftp      ftp             7 Jan 29 03:26 link -> target",
    b"crw-rw-rw-    1 root     root      1,   3 Jan 29 03:26 null",
    b"prw-r--r--    1 root     root            0 Jan 29 03:26 fifo",
    b"drwxr-xr-x    2 ftp      ftp          4096 Jan 29 03:26 .",
    b"drwxr-xr-x    2 ftp      ftp          4096 Jan 29 03:26 ..",
    b"total 1234",
    b"",
])
def test_list_expected_skips(line: bytes) -> None:
    parsed = parse_list_line(line, NOW)
    assert isinstance(parsed, Skipped) and parsed.expected


@pytest.mark.parametrize("line", [
    b"garbage",
    b"-rw-r--r--    1 ftp      ftp          1234 Foo 29 03:26 badmonth",
    b"-rw-r--r--    1 ftp      ftp          1234 Feb 30  2021 badday",
    b"-rw-r--r--    1 ftp      ftp          1234 Jan 29 25:26 badhour",
    b"-rw-r--r--    1 ftp      ftp  99999999999999999999 Jan 29  2020 huge",
    b"-rw-r--r--    1 ftp      ftp          1234 Jan 29  2020 a/b",
    b"-rw-r--r--    1 ftp      ftp          1234 Jan 29  2020 ",
    b"-rw-r--r--    1 ftp      ftp          1234 Jan 29  2020 nul\x00",
    b"\xff" * 70_000,
    b"-" * 5000,
])
def test_list_hostile_lines_are_skipped(line: bytes) -> None:
    parsed = parse_list_line(line, NOW)
    assert isinstance(parsed, Skipped) and not parsed.expected


def test_msdos_lines() -> None:
    assert parse_list_line(b"01-29-24  03:26PM       <DIR>          pool", NOW) == DirEntry(
        b"pool", DIR, 0, utc(2024, 1, 29, 15, 26, 0), MIN)
    assert parse_list_line(b"12-31-1999  12:05AM           1234 a file.iso\r", NOW) == DirEntry(
        b"a file.iso", FILE, 1234, utc(1999, 12, 31, 0, 5, 0), MIN)
    bad = parse_list_line(b"13-45-24  03:26PM           1 x", NOW)
    assert isinstance(bad, Skipped) and not bad.expected


def test_decode_name_falls_back_to_latin1() -> None:
    assert decode_name("guía".encode()) == "guía"
    assert decode_name(b"gu\xeda") == "guía"
