"""Conditional requests: ``If-Modified-Since`` against the indexed modification time."""

from __future__ import annotations

from twisted.web.http import stringToDatetime

from mirrorbits.model import FileInfo
from mirrorbits.web.decision import NotModified


def not_modified(if_modified_since: bytes | None, info: FileInfo) -> NotModified | None:
    """The 304 when the file is not newer than ``If-Modified-Since``, else None.

    An unparsable date, or a file without a known modification time, is never a 304.
    """
    if if_modified_since is None or not info.mod_time_ns:
        return None
    try:
        since = stringToDatetime(if_modified_since)
    except (ValueError, IndexError, KeyError):
        return None
    mtime = info.mod_time_ns // 1_000_000_000
    if mtime > since:
        return None
    return NotModified(mtime)
