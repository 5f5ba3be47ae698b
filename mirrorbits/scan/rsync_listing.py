"""Pure parser of the lines ``rsync -r <url>`` prints when it has no destination (spec §6.2).

A line looks like ``-rw-r--r--          3,000 2023/06/06 08:30:00 manuals/a b.pdf``: mode,
size (with thousands separators), date and time (UTC: the child runs with ``TZ=UTC``), then the
name after one space. Differences from the reference, on purpose:

* a line that does not have this shape is reported as :class:`Skipped` (the reference
  dereferenced a nil match and crashed, spec §20 item 9);
* the name is taken after exactly one space, so a name starting with spaces keeps them, and
  the fields are matched strictly, so a name containing ``1,000 2024/01/01 00:00:00`` cannot
  shift them;
* rsync in the C locale escapes every byte it cannot print (bytes >= 0x80, control
  characters, and a backslash followed by ``#``) as ``\\#ooo`` (three octal digits). Those
  sequences are turned back into bytes and the name decoded as UTF-8, so ``guía.pdf`` is
  stored as ``/guía.pdf`` and matches the local ``FILE_/guía.pdf``; the reference stored the
  escaped text verbatim and never matched such files (conformance README §6.1 item 1).
  A name that is not valid UTF-8 once unescaped is skipped, as the local scan does;
* a name longer than 4096 bytes is skipped (:func:`mirrorbits.scan.bounds.name_problem`).
"""

from __future__ import annotations

import calendar
import re
from typing import Final

from attrs import frozen

from mirrorbits.scan.bounds import name_problem

__all__ = ["MAX_SIZE", "ListedFile", "Skipped", "parse_line", "unescape_name"]

#: Largest size accepted: other readers of the database parse sizes as signed 64-bit integers.
MAX_SIZE: Final = 2**63 - 1
NS_PER_S: Final = 1_000_000_000

_LINE_RE: Final = re.compile(
    rb"^(\S+)\s+([0-9][0-9,]*)\s+(\d{4})/(\d{2})/(\d{2})\s+(\d{2}):(\d{2}):(\d{2}) (.*)$",
    re.DOTALL,
)
_ESCAPE_RE: Final = re.compile(rb"\\#([0-3][0-7]{2})")


@frozen
class ListedFile:
    """One regular file of a mirror: path (starting with ``/``), size, mtime in ns (UTC)."""

    path: str
    size: int
    mod_time_ns: int


@frozen
class Skipped:
    """A line that gives no file. ``expected`` is true for directories and symbolic links
    (nothing to report); otherwise ``reason`` says what is wrong with the line."""

    reason: str
    expected: bool = False


def parse_line(line: bytes) -> ListedFile | Skipped:
    """The file described by one listing line (without its line feed)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if line[:1] in (b"d", b"l"):
        return Skipped("directory or symbolic link", expected=True)
    match = _LINE_RE.match(line)
    if match is None:
        return Skipped("not a listing line")
    _mode, size_text, *stamp, raw_name = match.groups()
    digits = size_text.replace(b",", b"").lstrip(b"0") or b"0"
    if len(digits) > len(str(MAX_SIZE)) or int(digits) > MAX_SIZE:
        return Skipped(f"size {size_text[:40].decode()} is too large")
    size = int(digits)
    year, month, day, hour, minute, second = (int(part) for part in stamp)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour < 24 and minute < 60 and second < 60 and year >= 1):
        return Skipped("invalid date")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if not raw_name:
        return Skipped("empty name")
    name = unescape_name(raw_name)
    if name is None:
        return Skipped("name is not valid UTF-8")
    if "\x00" in name:
        return Skipped("name contains a NUL byte")
    path = name if name.startswith("/") else "/" + name
    problem = name_problem(path)
    if problem is not None:
        return Skipped(problem)
    return ListedFile(path=path, size=size, mod_time_ns=seconds * NS_PER_S)


def unescape_name(raw: bytes) -> str | None:
    """``\\#ooo`` sequences back to bytes, then UTF-8; ``None`` if not valid UTF-8."""
    unescaped = _ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 8)]), raw)
    try:
        return unescaped.decode("utf-8")
    except UnicodeDecodeError:
        return None
