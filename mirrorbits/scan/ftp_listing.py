"""Pure parsers for the FTP scanner (spec §6.3): URL, FEAT and MDTM replies, listing lines.

Listing lines are taken as bytes and parsed as RFC 3659 ``MLSD`` facts or as ``LIST`` output
(Unix ``ls -l``, then MS-DOS ``DIR``). Names stay bytes here (so they can be sent back to the
server exactly); :func:`decode_name` turns them into text: UTF-8 (RFC 2640), or latin-1 when the
bytes are not valid UTF-8, so that a mirror with legacy names is still listed. A line that cannot
be parsed is a :class:`Skipped` value, never an exception.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Final
from urllib.parse import unquote, urlsplit

from attrs import frozen

from mirrorbits.scan.rsync_listing import MAX_SIZE, Skipped

__all__ = [
    "DIR",
    "FILE",
    "DirEntry",
    "FtpTarget",
    "Skipped",
    "decode_name",
    "parse_feat",
    "parse_ftp_url",
    "parse_list_line",
    "parse_mdtm",
    "parse_mlsd_line",
    "parse_timeval",
]

NS_PER_S: Final = 1_000_000_000
FILE: Final = "file"
DIR: Final = "dir"

_MONTHS: Final = {
    m: i for i, m in enumerate(
        (b"jan", b"feb", b"mar", b"apr", b"may", b"jun",
         b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"), start=1)
}
_TIMEVAL_RE: Final = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?$")
_UNIX_RE: Final = re.compile(
    rb"^([-dlbcpsDn?])\S{9,10}\s+(?:\d+\s+)?(?:\S+\s+){0,2}?(\d+)\s+"
    rb"([A-Za-z]{3})\s+(\d{1,2})\s+(\d{4}|\d{1,2}:\d{2}) (.*)$",
    re.DOTALL,
)
_SPECIAL_RE: Final = re.compile(rb"^[lbcpsDn][-rwxsStTl]{9}[+.@]?\s")
_DOS_RE: Final = re.compile(
    rb"^(\d{2})-(\d{2})-(\d{2}|\d{4})\s+(\d{1,2}):(\d{2})\s*([AaPp][Mm])?\s+(<DIR>|\d+)\s+(.*)$",
    re.DOTALL,
)


@frozen
class FtpTarget:
    """Where and as whom to connect, and the directory to list (``/``-terminated text)."""

    host: str
    port: int
    user: str
    password: str
    path: str


@frozen
class DirEntry:
    """One entry of a directory listing: raw ``name``, ``kind`` (:data:`FILE` or :data:`DIR`),
    size, mtime in ns (0 if unknown) and its precision in ns (0 if unknown); ``unique`` is the
    MLSD ``unique`` fact (empty if none)."""

    name: bytes
    kind: str
    size: int = 0
    mod_time_ns: int = 0
    precision_ns: int = 0
    unique: str = ""


def parse_ftp_url(url: str) -> FtpTarget:
    """Split ``ftp://[user[:pass]@]host[:port]/path``; raises ``ValueError`` with the message."""
    if not url.startswith("ftp://"):
        raise ValueError(f"{url} does not start with ftp://")
    parts = urlsplit(url)
    try:
        port = parts.port or 21
    except ValueError as err:
        raise ValueError(f"{url}: invalid port") from err
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{url}: no host")
    user = unquote(parts.username) if parts.username else "anonymous"
    password = unquote(parts.password) if parts.password is not None else "anonymous"
    path = unquote(parts.path).rstrip("/") + "/"
    if not path.startswith("/"):
        path = "/" + path
    if any(c in text for text in (user, password, path) for c in "\r\n\x00"):
        raise ValueError(f"{url}: line break or NUL in the URL")
    return FtpTarget(host=host, port=port, user=user, password=password, path=path)


def parse_feat(lines: list[str]) -> frozenset[str]:
    """The feature names (upper case) of a ``211`` reply to ``FEAT``."""
    if not lines or not lines[-1].startswith("211"):
        return frozenset()
    names = set()
    for line in lines[1:-1]:
        words = line.split()
        if words:
            names.add(words[0].upper())
    return frozenset(names)


def parse_timeval(text: str) -> tuple[int, bool] | None:
    """``YYYYMMDDHHMMSS[.fff]`` (UTC) as (ns, has a non-zero fraction); ``None`` if invalid."""
    match = _TIMEVAL_RE.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not _valid_date(year, month, day, hour, minute, second):
        return None
    fraction = match.group(7) or ""
    frac_ns = int(fraction.ljust(9, "0")) if fraction else 0
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * NS_PER_S + frac_ns, frac_ns != 0


def parse_mdtm(lines: list[str]) -> tuple[int, bool] | None:
    """The time of a ``213 YYYYMMDDHHMMSS[.fff]`` reply to ``MDTM``; ``None`` if unusable."""
    if not lines or not lines[-1].startswith("213 "):
        return None
    parsed = parse_timeval(lines[-1][4:])
    if parsed is None or parsed[0] <= 0:
        return None
    return parsed


def parse_mlsd_line(line: bytes) -> DirEntry | Skipped:
    """One line of an ``MLSD`` reply: ``fact=value;...; name`` (RFC 3659 §7)."""
    line = line.removesuffix(b"\r")
    facts_text, sep, name = line.partition(b" ")
    if not sep or not facts_text.endswith(b";"):
        return Skipped("not an MLSD line")
    facts: dict[str, str] = {}
    for fact in facts_text[:-1].split(b";"):
        key, eq, value = fact.partition(b"=")
        if not eq or not key:
            return Skipped("malformed MLSD fact")
        facts[key.decode("latin-1").lower()] = value.decode("latin-1")
    kind = facts.get("type", "").lower()
    if kind in ("cdir", "pdir") or name in (b".", b".."):
        return Skipped("current or parent directory", expected=True)
    if kind not in (FILE, DIR):
        return Skipped(f"entry of type {kind[:40]!r}", expected=True)
    bad = _bad_name(name)
    if bad:
        return Skipped(bad)
    size = 0
    if kind == FILE:
        size_text = facts.get("size", "0")
        if not size_text.isdigit() or len(size_text) > 19 or int(size_text) > MAX_SIZE:
            return Skipped("invalid size")
        size = int(size_text)
    mod_time_ns = precision_ns = 0
    if "modify" in facts:
        parsed = parse_timeval(facts["modify"])
        if parsed is not None:
            mod_time_ns = parsed[0]
            precision_ns = 1_000_000 if parsed[1] else NS_PER_S
    return DirEntry(name=name, kind=kind, size=size, mod_time_ns=mod_time_ns,
                    precision_ns=precision_ns, unique=facts.get("unique", ""))


def parse_list_line(line: bytes, now_s: int) -> DirEntry | Skipped:
    """One line of a ``LIST`` reply, Unix or MS-DOS format.

    The date of a Unix line has either a year (day precision) or a time without year (minute
    precision; the year is the one that puts it no later than a day after ``now_s``). Times are
    the server's local time, taken as UTC.
    """
    line = line.removesuffix(b"\r")
    if not line.strip() or line.startswith(b"total "):
        return Skipped("not an entry", expected=True)
    if _SPECIAL_RE.match(line):
        return Skipped("symbolic link or special file", expected=True)
    match = _UNIX_RE.match(line)
    if match is not None:
        return _unix_entry(match, now_s)
    match = _DOS_RE.match(line)
    if match is not None:
        return _dos_entry(match)
    return Skipped("not a listing line")


def _unix_entry(match: re.Match[bytes], now_s: int) -> DirEntry | Skipped:
    kind_char, size_text, month_text, day_text, when, name = match.groups()
    if kind_char == b"-":
        kind = FILE
    elif kind_char == b"d":
        kind = DIR
    else:
        return Skipped("symbolic link or special file", expected=True)
    month = _MONTHS.get(month_text.lower())
    if month is None:
        return Skipped("invalid month")
    day = int(day_text)
    if b":" in when:
        hour, minute = (int(p) for p in when.split(b":"))
        year = _now_year(now_s)
        precision = 60 * NS_PER_S
        if _valid_date(year, month, day, hour, minute, 0) and calendar.timegm(
            (year, month, day, hour, minute, 0, 0, 0, 0)
        ) > now_s + 86400:
            year -= 1
    else:
        year, hour, minute = int(when), 0, 0
        precision = 86400 * NS_PER_S
    return _entry(name, kind, size_text, (year, month, day, hour, minute), precision)


def _dos_entry(match: re.Match[bytes]) -> DirEntry | Skipped:
    month_t, day_t, year_t, hour_t, minute_t, ampm, size_text, name = match.groups()
    year = int(year_t)
    if year < 100:
        year += 2000 if year < 70 else 1900
    hour = int(hour_t)
    if ampm is not None:
        if not 1 <= hour <= 12:
            return Skipped("invalid date")
        hour = hour % 12 + (12 if ampm.lower() == b"pm" else 0)
    kind = DIR if size_text == b"<DIR>" else FILE
    stamp = (year, int(month_t), int(day_t), hour, int(minute_t))
    return _entry(name, kind, b"0" if kind == DIR else size_text, stamp, 60 * NS_PER_S)


def _entry(
    name: bytes, kind: str, size_text: bytes, stamp: tuple[int, int, int, int, int],
    precision: int,
) -> DirEntry | Skipped:
    if name in (b".", b".."):
        return Skipped("current or parent directory", expected=True)
    bad = _bad_name(name)
    if bad:
        return Skipped(bad)
    if len(size_text) > 19 or int(size_text) > MAX_SIZE:
        return Skipped("invalid size")
    year, month, day, hour, minute = stamp
    if not _valid_date(year, month, day, hour, minute, 0):
        return Skipped("invalid date")
    seconds = calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0))
    return DirEntry(name=name, kind=kind, size=int(size_text) if kind == FILE else 0,
                    mod_time_ns=seconds * NS_PER_S, precision_ns=precision)


def _bad_name(name: bytes) -> str:
    if not name:
        return "empty name"
    if b"/" in name or b"\x00" in name or b"\n" in name or b"\r" in name:
        return "name contains '/', NUL or a line break"
    return ""


def _valid_date(year: int, month: int, day: int, hour: int, minute: int, second: int) -> bool:
    return (1 <= year <= 9999 and 1 <= month <= 12
            and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour < 24 and minute < 60 and second < 61)


def _now_year(now_s: int) -> int:
    return time.gmtime(now_s).tm_year


def decode_name(raw: bytes) -> str:
    """A name as text: UTF-8, or latin-1 when it is not valid UTF-8 (every byte maps)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
