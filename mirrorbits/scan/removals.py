"""What the daemon's own repository scans may remove (``RepositoryScanMaxRemove``).

The index is shared by every node of a cluster: a scan of a partly present repository (a sync
still running, a mount missing, a directory that cannot be read) would take the missing files
from every node at once. The scans of the daemon itself (at start, periodic, after an inotify
overflow) keep indexed files instead, for as long as the repository looks broken there:

* all of them when more would go than ``RepositoryScanMaxRemove`` allows (a count, or a share
  of the indexed files);
* otherwise those below a directory found empty (a mount point not mounted), then those below
  an entry the walk could not read (an I/O error, a stale NFS handle); the others go.

``mirrorbits-ctl refresh`` removes them anyway: it is the operator's word.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Final

from attrs import frozen

__all__ = ["DEFAULT_MAX_REMOVE", "Keeping", "RemovalLimit", "parse_removal_limit", "to_keep"]

_PERCENT: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%\s*")


@frozen
class RemovalLimit:
    """At most ``count`` files, or ``percent`` % of the indexed files (rounded down)."""

    count: int | None = None
    percent: float | None = None

    def most(self, indexed: int) -> int:
        """How many of *indexed* files one scan may remove."""
        if self.count is not None:
            return self.count
        return int(indexed * (self.percent or 0.0) / 100)

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return f"{self.percent:g}%"


DEFAULT_MAX_REMOVE: Final = RemovalLimit(percent=10.0)


def parse_removal_limit(value: int | str) -> RemovalLimit | None:
    """``500`` (files) or ``"10%"`` (of the indexed files, 0 to 100); ``None`` if neither."""
    if isinstance(value, int):
        return RemovalLimit(count=value) if value >= 0 else None
    match = _PERCENT.fullmatch(value)
    if match is None:
        return None
    percent = float(match.group(1))
    return RemovalLimit(percent=percent) if percent <= 100 else None


@frozen
class Keeping:
    """The paths a scan lacks that must stay indexed, and why (empty: none)."""

    paths: tuple[str, ...] = ()
    reason: str = ""


def to_keep(
    removed: Sequence[str],
    indexed: int,
    limit: RemovalLimit,
    empty_directories: Collection[str] = (),
    unreadable: Collection[str] = (),
) -> Keeping:
    """Which of the *removed* paths (of *indexed* files) must stay indexed, and why.

    All of them past *limit*; otherwise those below one of *empty_directories* or
    *unreadable* (repository paths such as ``/pub``, ``/`` for the root), the others may go.
    """
    if len(removed) > limit.most(indexed):
        return Keeping(tuple(removed), f"more than RepositoryScanMaxRemove ({limit}) of the "
                       f"{indexed} indexed files: not mounted or not synced whole?")
    for kind, places in (("is empty (a mount point not mounted?)", empty_directories),
                         ("could not be read", unreadable)):
        below = {path: place for path in removed
                 if (place := _place_of(path, places)) is not None}
        if below:
            first = next(iter(below.values()))
            return Keeping(tuple(below), f"{first} {kind}")
    return Keeping()


def _place_of(path: str, places: Collection[str]) -> str | None:
    """The one of *places* that is *path* or a directory above it, if any."""
    if not places:
        return None
    if path in places:
        return path
    cut = path.rfind("/")
    while cut > 0:
        if path[:cut] in places:
            return path[:cut]
        cut = path.rfind("/", 0, cut)
    return "/" if "/" in places else None
