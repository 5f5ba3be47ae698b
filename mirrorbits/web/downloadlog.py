"""The download log ``<LogDir>/downloads.log`` (spec §12.2).

Lines are formatted by :func:`format_download_line` and buffered in memory by
:meth:`DownloadLog.write_line`; a ``LoopingCall`` appends them to the file once a
second, so no request touches the disk. ``reopen`` (SIGHUP/SIGUSR1) closes the old
file before opening the new one (fix of §20 item 16, a descriptor leak).

Differences from the reference: the ``# Binary:`` header line names the Python
build (``Built with CPython 3.11.7 for linux/x86_64``) instead of the Go one, and
control characters in a path are escaped (``\\n``, ``\\x1b``) so that a request
cannot forge log lines; printable paths are written as they are.
"""

from __future__ import annotations

import math
import os
import time
from datetime import datetime
from typing import BinaryIO

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from mirrorbits.configcheck import log_dir_problem
from mirrorbits.logs import Logger
from mirrorbits.ticking import start_loop, stop_loop

log = Logger()

FILE_NAME = "downloads.log"
FLUSH_INTERVAL = 1.0
MAX_BUFFERED_LINES = 100_000

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v"}
_CONTROL = {c: _ESCAPES.get(chr(c), f"\\x{c:02x}") for c in [*range(0x20), 0x7F]}


def _local_time(now: float, fmt: str) -> str:
    return datetime.fromtimestamp(now).strftime(fmt)


class _Stamps:
    """``%Y/%m/%d %H:%M:%S.%f`` local times, the part up to the seconds made once per second.

    Equal to ``datetime.fromtimestamp(now).strftime(...)``, whose microseconds are rounded
    half to even (a fraction that rounds to 1,000,000 belongs to the next second).
    """

    __slots__ = ("_key", "_text")

    def __init__(self) -> None:
        self._key = (-1, 0, "")
        self._text = ""

    def __call__(self, now: float) -> str:
        if now < 0:
            return _local_time(now, "%Y/%m/%d %H:%M:%S.%f")
        fraction, whole = math.modf(now)
        second, micro = int(whole), round(fraction * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        key = (second, time.timezone, time.tzname[0])  # a new TZ (tzset) is seen at once
        if key != self._key:
            self._text = _local_time(second, "%Y/%m/%d %H:%M:%S")
            self._key = key
        return f"{self._text}.{micro:06d}"


_stamp = _Stamps()


def format_download_line(
    now: float,
    kind: str,
    status: int,
    method: str,
    path: str,
    ip: str,
    mirror_name: str | None,
    fallback: bool,
    mirror_asnum: int,
    client_asnum: int,
    distance_km: float,
    countries: list[str],
    error: str | None,
) -> str:
    """One download-log line, without newline; ``now`` is a Unix time shown in local time.

    ``kind`` is ``REDIRECT`` or ``JSON``; ``mirror_name`` is the first mirror of the
    list (None when the list is empty); ``distance_km`` should be the float32 value.
    """
    if not (path.isascii() and path.isprintable()):
        path = path.translate(_CONTROL)
    line = f'{_stamp(now)} {kind} {status} {method} "{path}" ip:{ip}'
    if status in (200, 302) and mirror_name is not None:
        same = "same" if 0 < mirror_asnum == client_asnum else ""
        return (
            f"{line} mirror:{mirror_name}{' fallback:true' if fallback else ''} "
            f"{same}asn:{mirror_asnum} distance:{distance_km:.2f}km "
            f"countries:{','.join(countries)}"
        )
    if status == 404:
        return line
    if status == 500:
        return f"{line} mirror:{mirror_name or 'unknown'} error:{error}"
    return f"{line} error:{error or '<unknown>'}"


def header_lines(now: float, hostname: str, binary_text: str) -> list[str]:
    """The three lines starting a new or empty log file."""
    return [
        f"# Log file created at: {_local_time(now, '%Y/%m/%d %H:%M:%S')}",
        f"# Running on machine: {hostname}",
        f"# Binary: {binary_text}",
    ]


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


@define(eq=False)
class DownloadLog(Service):
    """Buffered writer of ``<log_dir>/downloads.log``; disabled when ``log_dir`` is empty."""

    log_dir: str
    _clock: IReactorTime
    hostname: str
    binary_text: str
    _buffer: list[str] = field(init=False, factory=list)
    _file: BinaryIO | None = field(init=False, default=None)
    _loop: LoopingCall | None = field(init=False, default=None)
    _dropped: int = field(init=False, default=0)
    _open_failed: bool = field(init=False, default=False)
    _write_error: str | None = field(init=False, default=None)  # said until a write works
    #: False in a worker: the daemon opens the same file and says when it cannot.
    says_open_failures: bool = field(default=True, kw_only=True)

    def __attrs_post_init__(self) -> None:
        self.name = "downloadlog"

    @property
    def path(self) -> str:
        return os.path.join(self.log_dir, FILE_NAME)

    def write_line(self, line: str) -> None:
        """Queue one line (without newline); written at the next flush."""
        if not self.log_dir:
            return
        if len(self._buffer) >= MAX_BUFFERED_LINES:
            self._dropped += 1
            return
        self._buffer.append(line)

    def startService(self) -> None:
        super().startService()
        if not self.log_dir:
            return
        self._open(config_checked=True)
        self._loop = start_loop(self._tick, self._clock, FLUSH_INTERVAL, now=False)

    def stopService(self) -> None:
        super().stopService()
        stop_loop(self._loop)
        self._loop = None
        self.flush()
        self._close()

    def reopen(self, config_checked: bool = False) -> None:
        """Flush, close the current file and open ``downloads.log`` again
        (``config_checked``: at a reload, whose configuration check looked at ``LogDir``)."""
        if not self.log_dir:
            return
        self.flush()
        self._close()
        self._open_failed = False
        self._open(config_checked)

    def flush(self) -> None:
        """Append the buffered lines to the file now."""
        if self._dropped:
            log.warn("Download log: {n} line(s) dropped (buffer full)", n=self._dropped)
            self._dropped = 0
        if not self._buffer or self._file is None:
            return
        lines, self._buffer = self._buffer, []
        try:
            self._file.write(_encode("".join(line + "\n" for line in lines)))
            self._file.flush()
        except OSError as err:
            self._write_failed(err)
        else:
            self._write_worked()

    def _write_failed(self, err: OSError) -> None:
        """Say a write error once while it lasts (a full disk fails every second)."""
        if str(err) != self._write_error:
            self._write_error = str(err)
            log.error("Cannot write the download log {path}: {error} (lines may be lost until "
                      "it works again)", path=self.path, error=err)

    def _write_worked(self) -> None:
        if self._write_error is not None:
            self._write_error = None
            log.info("Download log {path} written again", path=self.path)

    def _tick(self) -> None:
        try:
            if self._file is None:
                self._open()
            self.flush()
        except Exception:
            log.failure("Download log flush failed")

    def _open(self, config_checked: bool = False) -> None:
        """Open the file; a failure is said once (then retried every second, quietly), not
        when the configuration check has just said what is wrong with ``LogDir``."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o664)
        except OSError as err:
            if not self._open_failed:
                self._open_failed = True
                if not self.says_open_failures or (config_checked
                                                   and log_dir_problem(self.log_dir)):
                    return
                log.error("Cannot open the download log {path}: {error}", path=self.path,
                          error=err)
            return
        self._open_failed = False
        handle = os.fdopen(fd, "ab")
        try:
            if os.fstat(fd).st_size == 0:
                header = header_lines(self._clock.seconds(), self.hostname, self.binary_text)
                handle.write(_encode("".join(line + "\n" for line in header)))
                handle.flush()
                self._write_worked()
        except OSError as err:
            self._write_failed(err)
        self._file = handle

    def _close(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            try:
                handle.close()
            except OSError as err:  # unwritten lines: the write error said
                self._write_failed(err)
