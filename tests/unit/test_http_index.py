"""The index page parsers of the HTTP scanner (nginx JSON, nginx HTML, Apache HTML).

The nginx pages (tests/fixtures/http_index/) are what nginx 1.22 served for a small tree, plus a
few hostile entries; the Apache ones follow
mod_autoindex 2.4's table and ``<pre>`` layouts and its plain list (no ``FancyIndexing``).
"""

from __future__ import annotations

import calendar
from pathlib import Path

from mirrorbits.scan.http_index import (
    MINUTE_NS,
    SECOND_NS,
    IndexEntry,
    parse_http_date,
    parse_index,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "http_index"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


PAGE = "http://127.0.0.9:8080/pub/"
NOON = calendar.timegm((2026, 12, 4, 12, 0, 0)) * SECOND_NS

NGINX_HTML = fixture("nginx.html")

NGINX_ROUNDED = NGINX_HTML.replace(b"1300000", b"1M")

NGINX_JSON = fixture("nginx.json")

APACHE_TABLE = fixture("apache-table.html")

APACHE_PRE = fixture("apache-pre.html")

APACHE_PLAIN = fixture("apache-plain.html")


def by_name(entries: tuple[IndexEntry, ...]) -> dict[str, IndexEntry]:
    return {entry.name: entry for entry in entries}


def test_nginx_html_exact_sizes_and_minute_times() -> None:
    page = parse_index(NGINX_HTML, "text/html", PAGE)
    found = by_name(page.entries)
    assert list(found) == ["sub dir", "big.iso", "café.bin",
                           "a-very-long-name-that-nginx-shortens-in-the-text-of-the-link.txt"]
    assert found["sub dir"].is_dir and found["sub dir"].href == PAGE + "sub%20dir/"
    big = found["big.iso"]
    assert (big.size, big.mod_time_ns, big.precision_ns) == (1_300_000, NOON, MINUTE_NS)
    assert big.href == PAGE + "big.iso" and not big.is_dir
    assert found["café.bin"].href == PAGE + "caf%C3%A9.bin"
    assert found["a-very-long-name-that-nginx-shortens-in-the-text-of-the-link.txt"].size == 7
    assert page.rejected == 0


def test_rounded_sizes_are_unknown() -> None:
    found = by_name(parse_index(NGINX_ROUNDED, "text/html", PAGE).entries)
    assert (found["big.iso"].size, found["big.iso"].shown_size) == (None, "1M")
    assert found["café.bin"].size == 5000  # nginx lists up to 9999 bytes exactly


def test_nginx_json_exact_sizes_and_seconds() -> None:
    page = parse_index(NGINX_JSON, "application/json", PAGE)
    found = by_name(page.entries)
    assert list(found) == ["sub dir", "big.iso", "café.bin"]
    big = found["big.iso"]
    assert (big.size, big.mod_time_ns, big.precision_ns) == (1_300_000, NOON + 7 * SECOND_NS,
                                                             SECOND_NS)
    assert found["sub dir"].href == PAGE + "sub%20dir/" and found["sub dir"].is_dir
    assert found["café.bin"].href == PAGE + "caf%C3%A9.bin"
    assert page.rejected == 2  # ../escape and the negative size


def test_apache_table() -> None:
    page = parse_index(APACHE_TABLE, "text/html;charset=UTF-8", PAGE)
    found = by_name(page.entries)
    assert list(found) == ["sub dir", "big.iso", "a&b.txt"]  # no sort links, no parent
    assert (found["big.iso"].size, found["big.iso"].shown_size) == (None, "1.2M")
    assert found["big.iso"].mod_time_ns == NOON
    notes = found["a&b.txt"]
    assert (notes.size, notes.mod_time_ns) == (972, NOON)  # the description's date is ignored
    assert notes.href == PAGE + "a&b.txt"


def test_apache_pre() -> None:
    found = by_name(parse_index(APACHE_PRE, "text/html", PAGE).entries)
    assert list(found) == ["sub dir", "big.iso"]
    assert found["big.iso"].shown_size == "1.2M" and found["big.iso"].size is None
    assert found["sub dir"].is_dir


def test_plain_list_has_names_only() -> None:
    found = by_name(parse_index(APACHE_PLAIN, "text/html", PAGE).entries)
    assert found["big.iso"] == IndexEntry(name="big.iso", href=PAGE + "big.iso", is_dir=False)
    assert found["sub dir"].is_dir


def test_only_direct_children_are_entries() -> None:
    links = [
        "../", "/", "?C=M;O=A", "#top", "http://elsewhere.example/pub/x", "sub/deeper/file",
        "https://127.0.0.9:8080/pub/other-scheme", "x?download=1", "./", "%2E%2E/",
        "a%2Fb", "http://127.0.0.9:8080/pub/absolute.txt", "nul%00name", "/pub/rooted.txt",
    ]
    body = "".join(f'<a href="{link}">x</a> 04-Dec-2026 12:00 1\n' for link in links)
    page = parse_index(body.encode(), "text/html", PAGE)
    assert [e.name for e in page.entries] == ["absolute.txt", "rooted.txt"]
    assert page.rejected == 3  # %2E%2E, a%2Fb and nul%00name


def test_invalid_dates_and_latin1_names() -> None:
    body = (b'<a href="bad">bad</a> 31-Feb-2026 12:00 5\n'
            b'<a href="caf%E9">caf\xe9</a> 2026-12-04 12:00:09 5\n')
    page = parse_index(body, "text/html", PAGE)
    assert page.rejected == 1
    (entry,) = page.entries
    assert entry.name == "café" and entry.precision_ns == SECOND_NS
    assert entry.mod_time_ns == NOON + 9 * SECOND_NS


def test_raw_spaces_and_utf8_in_hrefs_are_encoded() -> None:
    page = parse_index('<a href="two words é">x</a>'.encode(), "text/html", PAGE)
    assert [(e.name, e.href) for e in page.entries] == [
        ("two words é", PAGE + "two%20words%20%C3%A9")]


def test_json_errors() -> None:
    for body in (b"[", b'{"name": "x"}'):
        try:
            parse_index(body, "application/json", PAGE)
        except ValueError as err:
            assert "JSON" in str(err)
        else:
            raise AssertionError("no error")


def test_http_dates() -> None:
    assert parse_http_date("Fri, 04 Dec 2026 12:00:07 GMT") == NOON + 7 * SECOND_NS
    assert parse_http_date("Friday, 04-Dec-26 12:00:07 GMT") == NOON + 7 * SECOND_NS
    assert parse_http_date("Fri Dec  4 12:00:07 2026") == NOON + 7 * SECOND_NS
    assert parse_http_date("yesterday") is None
    assert parse_http_date("Fri, 31 Feb 2026 12:00:07 GMT") is None
