"""What one mirror listing may cost, and the names it may give (rsync and FTP scans alike).

A mirror is not trusted to be reasonable. A listing is abandoned (the scan fails, the
mirror's known files stay as they were) when it

* has more than ``MaxScanEntries`` entries (every line counts: files, directories, lines
  skipped), which bounds the memory the listing takes (about 250 bytes per file with a
  60-byte path, measured: 5,000,000 entries is about 1.25 GB);
* is silent for :data:`STALL_TIMEOUT` seconds (no byte from rsync, no byte on the FTP
  control or data connection);
* is not complete within the scan's time limit (6 hours unless the command gives one).

A name longer than :data:`MAX_NAME_BYTES` is skipped and counted, as is a line that is not a
listing line; the first :data:`MAX_LOGGED_SKIPS` are logged one by one, then a summary by
reason. A name with a control character (C0 but the tab, DEL, C1) is kept only when the local
repository holds the same path (the local scan takes any name, and the redirector escapes them
all): :func:`has_control_characters`, applied when the listing is committed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Final

from attrs import define, field, frozen

from mirrorbits.logs import Logger

__all__ = [
    "DEFAULT_BOUNDS",
    "DEFAULT_MAX_ENTRIES",
    "MAX_LOGGED_SKIPS",
    "MAX_NAME_BYTES",
    "STALL_TIMEOUT",
    "ScanBounds",
    "SkipTally",
    "has_control_characters",
    "name_problem",
]

DEFAULT_MAX_ENTRIES: Final = 5_000_000
#: Longest path accepted (bytes of UTF-8): Linux's PATH_MAX.
MAX_NAME_BYTES: Final = 4096
#: Seconds a listing may stay silent.
STALL_TIMEOUT: Final = 120.0
#: Skipped lines logged one by one before only counting them.
MAX_LOGGED_SKIPS: Final = 20

CONTROL_REASON: Final = "name contains control characters"
_CONTROL: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


@frozen
class ScanBounds:
    """The limits of one listing (the time limit is the scan's own ``timeout``)."""

    max_entries: int = DEFAULT_MAX_ENTRIES
    stall: float = STALL_TIMEOUT

    def too_many(self, scanner: str) -> str:
        """The error of a listing that went past :attr:`max_entries`."""
        return (f"{scanner}: more than {self.max_entries} entries listed (MaxScanEntries), "
                "scan abandoned")

    def stalled(self, scanner: str) -> str:
        return f"{scanner}: nothing received for {self.stall:g} s, scan abandoned"


def name_problem(path: str) -> str | None:
    """Why a listed path (text, starting with ``/``) is skipped, or ``None``."""
    if len(path) * 4 > MAX_NAME_BYTES and len(path.encode("utf-8", "replace")) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes"
    return None


def has_control_characters(path: str) -> bool:
    """Whether ``path`` holds a C0 control character other than the tab, DEL or a C1 one."""
    return _CONTROL.search(path) is not None


@define
class SkipTally:
    """Counts skipped lines by reason; logs the first ones and, at the end, the summary."""

    log: Logger
    name: str
    scanner: str
    by_reason: Counter[str] = field(factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def skip(self, line: bytes, reason: str) -> None:
        self.by_reason[reason] += 1
        if self.total <= MAX_LOGGED_SKIPS:
            self.log.error("[{name}] Skipping an {scanner} line ({reason}): {line!r}",
                           name=self.name, scanner=self.scanner, reason=reason,
                           line=line[:200])

    def summarize(self) -> None:
        """One line with the counts by reason, when anything was skipped."""
        if not self.by_reason:
            return
        reasons = ", ".join(f"{count} {reason}" for reason, count in
                            sorted(self.by_reason.items(), key=lambda item: -item[1]))
        self.log.error("[{name}] {count} {scanner} lines skipped: {reasons}", name=self.name,
                       count=self.total, scanner=self.scanner, reasons=reasons)

#: The limits a listing gets when the caller gives none.
DEFAULT_BOUNDS: Final = ScanBounds()
