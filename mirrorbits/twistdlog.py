"""twistd's own ``--logfile`` and SIGUSR1: follow a log that logrotate moved away.

twistd answers SIGUSR1 by renaming its log to ``.1`` itself, and does nothing when the file is
no longer at its path: after logrotate's ``mv`` (its default, ``create``) and the
``kill -USR1`` of its ``postrotate``, the daemon went on writing into the moved file for good.
Mirrorbits' SIGUSR1 reopens its logs; here, when the file at the path is no longer the one
written to (moved away, or replaced by logrotate's new empty one), it is reopened at its path.
A file still in place is left to twistd, which rotates it as it always did.

twistd also renamed its log to ``.1``, ``.2``... by itself at every megabyte and kept every one
of them: files that logrotate's ``*.log`` rule does not see, so the disk filled up under a
rotation set up for the reference. :func:`leave_rotation_to_logrotate` turns that off: one file,
as the reference's ``-log``, moved by logrotate (or by SIGUSR1, renamed to ``.1``).

twistd keeps its ``LogFile`` in the closure of the SIGUSR1 handler it installs; nothing else
reaches it. Without it (``-n`` to the terminal, ``--syslog``, another twistd), nothing changes.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from twisted.python.logfile import BaseLogFile, LogFile


def twistd_log_file(handler: Any) -> BaseLogFile | None:
    """The log file twistd's SIGUSR1 ``handler`` rotates, if it is that handler."""
    for cell in getattr(handler, "__closure__", None) or ():
        with contextlib.suppress(ValueError):  # an empty cell
            if isinstance(cell.cell_contents, BaseLogFile):
                return cell.cell_contents
    return None


def moved_away(log_file: BaseLogFile) -> bool:
    """Whether the file at ``log_file``'s path is not the one it writes to (or is gone)."""
    try:
        there = os.stat(log_file.path)
    except OSError:
        return True
    try:
        written = os.fstat(log_file._file.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (there.st_dev, there.st_ino) != (written.st_dev, written.st_ino)


def leave_rotation_to_logrotate(log_file: BaseLogFile) -> None:
    """No rotation of ``log_file`` by size (twistd's ``--logfile``: every megabyte)."""
    if isinstance(log_file, LogFile):
        log_file.rotateLength = 0  # LogFile.shouldRotate: never
