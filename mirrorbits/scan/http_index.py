"""Pure parsers of the HTTP scanner: directory index pages and HTTP dates.

Three index formats are read:

* **nginx JSON** (``autoindex_format json``): ``[{"name": .., "type": "file", "mtime":
  "Fri, 04 Dec 2026 12:00:07 GMT", "size": 123}, ..]`` — exact sizes, times to the second (UTC);
* **nginx HTML** (``autoindex on``): ``<a href="name">name</a>   04-Dec-2026 12:00   12345``
  — times to the minute (UTC unless ``autoindex_localtime on``); sizes in bytes, or rounded
  (``1M``, ``12K``) with ``autoindex_exact_size off``;
* **Apache HTML** (``mod_autoindex``, table or ``<pre>`` layout): ``2026-12-04 12:00  1.2M`` —
  times to the minute in the server's local time, sizes rounded from 973 bytes on; without
  ``FancyIndexing`` a plain list of links (no time, no size).

Any HTML page is read the same way: each link is an entry, and the text that follows it (up to
the next link, tags removed) may hold a date and, right after it, a size. A bare number is an
exact size in bytes; a number with a unit (``1.2M``) is rounded and reported as unknown
(``size is None``), so the walker asks the file itself (``HEAD``). Only links to a direct child
of the page are entries: the parent (``../``), sort links (``?C=N;O=D``), other hosts, other
directories and fragments are left out. A link ending in ``/`` is a directory.

Names are taken from the link target, never from the shown text (nginx shortens long names),
percent-decoded and read as UTF-8 (latin-1 when not valid UTF-8, as the FTP scanner does).
"""

from __future__ import annotations

import calendar
import html
import json
import re
from email.utils import parsedate_tz
from typing import Final
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from attrs import frozen

from mirrorbits.scan.ftp_listing import decode_name
from mirrorbits.scan.rsync_listing import MAX_SIZE

__all__ = [
    "MINUTE_NS",
    "SECOND_NS",
    "IndexEntry",
    "IndexPage",
    "NotAnIndex",
    "parse_http_date",
    "parse_index",
]

SECOND_NS: Final = 1_000_000_000
MINUTE_NS: Final = 60 * SECOND_NS

_MONTHS: Final = {
    m: i for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1)
}
_ANCHOR_RE: Final = re.compile(
    r"""<a\s[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>""",
    re.IGNORECASE | re.DOTALL,
)
_TAG_RE: Final = re.compile(r"<[^>]*>", re.DOTALL)
_SIZE: Final = r"(?:\s+(-|\d+(?:\.\d+)?[KMGTP]?)(?=\s|$))?"
# 04-Dec-2026 12:00[:07] (nginx, Apache 2.2) and 2026-12-04 12:00[:07] (Apache 2.4)
_DMY_RE: Final = re.compile(
    r"(?<!\S)(\d{1,2})-([A-Za-z]{3})-(\d{4})\s+(\d{2}):(\d{2})(?::(\d{2}))?" + _SIZE)
_YMD_RE: Final = re.compile(
    r"(?<!\S)(\d{4})-(\d{2})-(\d{2})\s+(\d{2}):(\d{2})(?::(\d{2}))?" + _SIZE)


class NotAnIndex(ValueError):
    """A page that cannot be read as a directory index (``str()`` says why)."""


@frozen
class IndexEntry:
    """One entry of an index page.

    ``href`` is the absolute URL of the entry (as the server wrote it, resolved against the
    page); ``size`` is exact bytes or ``None`` (rounded or not shown), ``shown_size`` the text
    listed (``""`` if none); ``mod_time_ns`` is 0 when the page shows no time, else
    ``precision_ns`` tells how precise it is.
    """

    name: str
    href: str
    is_dir: bool
    size: int | None = None
    shown_size: str = ""
    mod_time_ns: int = 0
    precision_ns: int = 0


@frozen
class IndexPage:
    """The entries of a page and how many of them were unusable (bad name, size or date)."""

    entries: tuple[IndexEntry, ...]
    rejected: int = 0


def parse_index(body: bytes, content_type: str, page_url: str) -> IndexPage:
    """The entries of the index page ``body`` served at ``page_url`` (ending with ``/``).

    JSON when the content type says so or the body starts with ``[``, else HTML. Raises
    :class:`NotAnIndex` for a JSON page that is not an nginx listing.
    """
    if "json" in content_type.lower() or body.lstrip()[:1] == b"[":
        return _parse_json(body, page_url)
    return _parse_html(body, page_url)


def parse_http_date(text: str) -> int | None:
    """An HTTP date (RFC 9110: IMF-fixdate, or the obsolete forms) in ns; ``None`` if invalid."""
    parsed = parsedate_tz(text.strip())
    if parsed is None:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    if not _valid(year, month, day, hour, minute, second):
        return None
    offset = parsed[9] or 0
    return (calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset) \
        * SECOND_NS


def _parse_json(body: bytes, page_url: str) -> IndexPage:
    try:
        items = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError as err:
        raise NotAnIndex(f"invalid JSON index: {err}") from None
    if not isinstance(items, list):
        raise NotAnIndex("JSON index is not a list")
    entries: list[IndexEntry] = []
    rejected = 0
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            rejected += 1
            continue
        kind = item.get("type")
        if kind not in ("file", "directory"):
            continue  # "other": sockets, devices
        raw = item["name"].encode("utf-8", "surrogateescape")
        if _bad_name(raw):
            rejected += 1
            continue
        size = item.get("size", 0) if kind == "file" else 0
        mtime = item.get("mtime")
        stamp = parse_http_date(mtime) if isinstance(mtime, str) else None
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE \
                or stamp is None:
            rejected += 1
            continue
        is_dir = kind == "directory"
        href = urljoin(page_url, _quote(raw) + ("/" if is_dir else ""))
        entries.append(IndexEntry(name=decode_name(raw), href=href, is_dir=is_dir,
                                  size=size, shown_size=str(size), mod_time_ns=stamp,
                                  precision_ns=SECOND_NS))
    return IndexPage(tuple(entries), rejected)


def _parse_html(body: bytes, page_url: str) -> IndexPage:
    text = body.decode("latin-1")  # one character per byte: hrefs and dates are ASCII
    anchors = list(_ANCHOR_RE.finditer(text))
    entries: list[IndexEntry] = []
    seen: dict[str, int] = {}  # href -> index in entries
    rejected = 0
    for number, anchor in enumerate(anchors):
        target = html.unescape(next(g for g in anchor.groups() if g is not None))
        child = _child_of(page_url, target)
        if child is None:
            continue
        href, raw, is_dir = child
        if _bad_name(raw):
            rejected += 1
            continue
        end = anchors[number + 1].start() if number + 1 < len(anchors) else len(text)
        tail = text[anchor.end():end]
        closing = tail.lower().find("</a>")
        if closing >= 0:
            tail = tail[closing + 4:]
        columns = html.unescape(_TAG_RE.sub(" ", tail)).replace("\xa0", " ")
        entry = _html_entry(decode_name(raw), href, is_dir, columns)
        if entry is None:
            rejected += 1
        elif href not in seen:
            seen[href] = len(entries)
            entries.append(entry)
        elif entry.mod_time_ns and not entries[seen[href]].mod_time_ns:
            # Apache's IconsAreLinks: the icon's link comes first, the columns follow the name's
            entries[seen[href]] = entry
    return IndexPage(tuple(entries), rejected)


def _html_entry(name: str, href: str, is_dir: bool, columns: str) -> IndexEntry | None:
    """The entry of one link from the text after it; ``None`` if its date or size is invalid."""
    match = _DMY_RE.search(columns)
    if match is not None:
        day, month_text, year = match.group(1), match.group(2), match.group(3)
        month = _MONTHS.get(month_text.lower(), 0)
    else:
        match = _YMD_RE.search(columns)
        if match is None:
            return IndexEntry(name=name, href=href, is_dir=is_dir)
        year, month_text, day = match.group(1), match.group(2), match.group(3)
        month = int(month_text)
    hour, minute = int(match.group(4)), int(match.group(5))
    second = int(match.group(6) or 0)
    if not _valid(int(year), month, int(day), hour, minute, second):
        return None
    seconds = calendar.timegm((int(year), month, int(day), hour, minute, second, 0, 0, 0))
    precision = SECOND_NS if match.group(6) is not None else MINUTE_NS
    shown = match.group(7) or ""
    size: int | None = None
    if not is_dir and shown.isdigit():
        if len(shown) > 19 or int(shown) > MAX_SIZE:
            return None
        size = int(shown)
    return IndexEntry(name=name, href=href, is_dir=is_dir, size=size, shown_size=shown,
                      mod_time_ns=seconds * SECOND_NS, precision_ns=precision)


def _child_of(page_url: str, target: str) -> tuple[str, bytes, bool] | None:
    """(absolute URL, raw name, is a directory) when ``target`` names a direct child of the
    page; ``None`` for any other link."""
    if not target or target.startswith(("?", "#")):
        return None
    href = urljoin(page_url, _ascii(target))
    parts = urlsplit(href)
    base = urlsplit(page_url)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or parts.query \
            or parts.fragment or not parts.path.startswith(base.path):
        return None
    rest = parts.path[len(base.path):]
    is_dir = rest.endswith("/")
    rest = rest.removesuffix("/")
    if not rest or "/" in rest:
        return None
    return href, unquote_to_bytes(rest), is_dir


def _ascii(target: str) -> str:
    """``target`` with the characters a URL may not hold (spaces, non-ASCII) percent-encoded."""
    if target.isascii() and " " not in target:
        return target
    raw = target.encode("latin-1", "replace") if all(ord(c) < 256 for c in target) \
        else target.encode("utf-8")
    return "".join(chr(b) if 0x20 < b < 0x7F else f"%{b:02X}" for b in raw)


def _quote(raw: bytes) -> str:
    """A name as a URL path segment: everything but unreserved characters percent-encoded."""
    keep = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in raw)


def _bad_name(raw: bytes) -> bool:
    return raw in (b"", b".", b"..") or any(c in raw for c in (b"/", b"\x00", b"\n", b"\r"))


def _valid(year: int, month: int, day: int, hour: int, minute: int, second: int) -> bool:
    return (1 <= year <= 9999 and 1 <= month <= 12
            and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour < 24 and minute < 60 and second < 61)
