"""The rsync mirror scanner (spec §6.2): run ``rsync -r <url>`` and parse its listing.

Differences from the reference, on purpose:

* stdout and stderr are read as they come (spec §20 item 21: the reference drained stdout
  before reading stderr, so a chatty stderr could block the child);
* a line that is not a listing line is logged and skipped (§20 item 9), an over-long line too;
* exit status 24 (files vanished during the listing) is, like 23, a success with warnings;
* the whole run is bounded by ``timeout``, and by :class:`~mirrorbits.scan.bounds.ScanBounds`:
  more than ``max_entries`` lines, or no output for ``stall`` seconds, abandons the listing;
  cancelling it (or any of these) sends ``TERM``, then ``KILL`` after :data:`KILL_GRACE`
  seconds.
"""

from __future__ import annotations

import shutil
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Final
from urllib.parse import unquote, urlsplit

from attrs import frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from mirrorbits.logs import Logger
from mirrorbits.progress import Progress
from mirrorbits.reactors import IProcessReactor
from mirrorbits.scan.bounds import DEFAULT_BOUNDS, MAX_LOGGED_SKIPS, ScanBounds, SkipTally
from mirrorbits.scan.rsync_listing import ListedFile, Skipped, parse_line
from mirrorbits.scan.walk import ScanAborted

__all__ = [
    "KILL_GRACE",
    "MAX_LINE",
    "MAX_LOGGED_SKIPS",
    "PRECISION_NS",
    "LineBuffer",
    "RsyncCommand",
    "RsyncProtocol",
    "ScanError",
    "ScanListing",
    "exit_error",
    "rsync_command",
    "rsync_list",
]

log = Logger(namespace="mirrorbits.scan.rsync")

#: rsync lists whole seconds.
PRECISION_NS: Final = 1_000_000_000
#: Longest line kept (a 4096-byte path fully escaped is about 20 KiB).
MAX_LINE: Final = 64 * 1024
#: Seconds between ``TERM`` and ``KILL``.
KILL_GRACE: Final = 5.0
STDERR_TAIL: Final = 20

_EXIT_MESSAGES: Final = {
    5: "rsync: Error starting client-server protocol",
    10: "rsync: Error in socket I/O",
    11: "rsync: Error in file I/O",
    30: "rsync: Timeout in data send/receive",
    35: "Timeout waiting for daemon connection",
}
_PARTIAL_MESSAGES: Final = {
    23: "rsync: Partial transfer due to error",
    24: "rsync: Partial transfer due to vanished source files",
}


class ScanError(Exception):
    """A scan that failed; ``str()`` is the message stored in the mirror's log."""

    def __init__(self, message: str, stderr_tail: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.stderr_tail = stderr_tail


@frozen
class ScanListing:
    """What a scanner found: the files, the warnings met, how many lines were skipped."""

    files: tuple[ListedFile, ...]
    precision_ns: int = PRECISION_NS
    warnings: tuple[str, ...] = ()
    skipped_lines: int = 0


@frozen
class RsyncCommand:
    """The executable name, the URL without credentials and the child's whole environment."""

    executable: str
    args: tuple[str, ...]
    url: str
    env: dict[str, str]


def rsync_command(url: str, options: Sequence[str] = ()) -> RsyncCommand:
    """The command line and environment for ``url`` (``rsync://`` or ``rsyncs://``).

    Credentials are removed from the URL and passed as ``USER`` / ``RSYNC_PASSWORD``.
    ``options`` (checked by :mod:`~mirrorbits.scan.rsync_options`) come after the usual
    ones, so that a ``--timeout=`` of theirs wins.
    """
    timeouts: tuple[str, ...]
    if url.startswith("rsync://"):
        executable, timeouts = "rsync", ("--timeout=30", "--contimeout=30")
    elif url.startswith("rsyncs://"):
        executable, timeouts = "rsync-ssl", ("--timeout=60",)
        url = "rsync://" + url[len("rsyncs://"):]
    else:
        raise ScanError(f"{url} does not start with rsync:// or rsyncs://")
    env = {"TZ": "UTC"}
    parts = urlsplit(url)
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        if user:
            env["USER"] = unquote(user)
        if colon:
            env["RSYNC_PASSWORD"] = unquote(password)
        url = parts._replace(netloc=host).geturl()
    args = ("-r", "--no-motd", "--exclude=.~tmp~/", *timeouts, *options, url)
    return RsyncCommand(executable=executable, args=args, url=url, env=env)


def exit_error(code: int) -> str | None:
    """The error message of an rsync exit status; ``None`` for a success (0, 23, 24)."""
    if code == 0 or code in _PARTIAL_MESSAGES:
        return None
    return _EXIT_MESSAGES.get(code, f"rsync: exit status {code}")


class LineBuffer:
    """Splits a byte stream into lines; a line longer than ``limit`` is dropped and counted."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._limit = limit
        self._partial = b""
        self._discarding = False
        self.overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if self._discarding and lines:
            lines.pop(0)
            self._discarding = False
        complete = []
        for line in lines:
            if len(line) > self._limit:
                self.overlong += 1
            else:
                complete.append(line)
        if len(self._partial) > self._limit:
            if not self._discarding:
                self.overlong += 1
            self._discarding = True
            self._partial = b""
        return complete

    def flush(self) -> list[bytes]:
        """The last line when the stream ended without a line feed."""
        rest, self._partial = self._partial, b""
        if self._discarding or not rest:
            self._discarding = False
            return []
        return [rest]


class RsyncProtocol(ProcessProtocol):
    """Reads an rsync listing: files go to ``on_file``, bad lines to ``on_skip``.

    ``ended`` fires with the exit code, or ``-signal`` when the child was killed. Past
    ``max_entries`` lines, ``on_overflow`` is called once and the rest of the output is
    dropped; ``last_output`` is when the child last wrote anything (by ``clock``).
    """

    def __init__(
        self,
        on_file: Callable[[ListedFile], None],
        on_skip: Callable[[bytes, str], None],
        *,
        max_entries: int | None = None,
        on_overflow: Callable[[], None] = lambda: None,
        clock: IReactorTime | None = None,
    ) -> None:
        self._on_file = on_file
        self._on_skip = on_skip
        self._max_entries = max_entries
        self._on_overflow = on_overflow
        self._clock = clock
        self.entries = 0
        self.overflowed = False
        self.last_output = clock.seconds() if clock is not None else 0.0
        self._out = LineBuffer()
        self._err = LineBuffer()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self.opendir_errors: list[str] = []
        self.ended: Deferred[int] = Deferred()
        self.exited = False
        self._kill: IDelayedCall | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self._touch()
        if self.overflowed:
            return
        for line in self._out.feed(data):
            self._stdout_line(line)

    def errReceived(self, data: bytes) -> None:
        self._touch()
        for line in self._err.feed(data):
            self._stderr_line(line)

    def _touch(self) -> None:
        if self._clock is not None:
            self.last_output = self._clock.seconds()

    def _stdout_line(self, line: bytes) -> None:
        if self.overflowed:
            return
        self.entries += 1
        if self._max_entries is not None and self.entries > self._max_entries:
            self.overflowed = True
            self._on_overflow()
            return
        parsed = parse_line(line)
        if isinstance(parsed, Skipped):
            if not parsed.expected:
                self._on_skip(line, parsed.reason)
        else:
            self._on_file(parsed)

    def _stderr_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        self.stderr_tail.append(text)
        if ": opendir " in text and len(self.opendir_errors) < 1000:
            self.opendir_errors.append(text)

    def processEnded(self, reason: Failure) -> None:
        for line in self._out.flush():
            self._stdout_line(line)
        for line in self._err.flush():
            self._stderr_line(line)
        for _ in range(self._out.overlong):
            self._on_skip(b"", "line too long")
        self.exited = True
        if self._kill is not None and self._kill.active():
            self._kill.cancel()
        value = reason.value
        if isinstance(value, ProcessTerminated) and value.exitCode is None:
            code = -(value.signal or 0)
        elif isinstance(value, (ProcessDone, ProcessTerminated)):
            code = value.exitCode or 0
        else:
            code = -1
        self.ended.callback(code)

    def terminate(self, clock: IReactorTime, grace: float = KILL_GRACE) -> None:
        """``TERM`` now, ``KILL`` after ``grace`` seconds if still running.

        Our ends of its output pipes are closed too: a process the child started (rsync-ssl's
        helpers) gets ``SIGPIPE`` at its next write instead of keeping the listing open.
        """
        self._signal("TERM")
        if self.transport is not None and not self.exited:
            self.transport.closeStdout()
            self.transport.closeStderr()
        if self._kill is None and not self.exited:
            self._kill = clock.callLater(grace, self._signal, "KILL")

    def _signal(self, name: str) -> None:
        if self.exited or self.transport is None:
            return
        with suppress(ProcessExitedAlready):
            self.transport.signalProcess(name)


async def rsync_list(
    reactor: IProcessReactor,
    url: str,
    timeout: float,
    *,
    name: str = "",
    executable: str | None = None,
    progress: Progress | None = None,
    options: Sequence[str] = (),
    bounds: ScanBounds = DEFAULT_BOUNDS,
) -> ScanListing:
    """Run rsync on ``url`` and return the files it lists (raises :class:`ScanError`).

    Cancelling the call stops rsync and raises :class:`ScanAborted`. ``executable`` overrides
    the program found on ``PATH`` (tests); ``progress`` counts the files listed; ``options``
    are the mirror's extra ones (``RsyncOptions``); ``bounds`` limits the entries and the
    silence (the whole run is limited by ``timeout``).
    """
    command = rsync_command(url, options)
    program = executable or shutil.which(command.executable)
    if program is None:
        raise ScanError(f"{command.executable}: command not found")
    files: list[ListedFile] = []
    skips = SkipTally(log, name, "rsync")

    def on_file(listed: ListedFile) -> None:
        files.append(listed)
        if progress is not None:
            progress.advance()

    if progress is not None:
        progress.begin("listing")
    abandoned = ""

    def abandon(why: str) -> None:
        nonlocal abandoned
        if not abandoned:
            abandoned = why
            protocol.terminate(reactor)

    protocol = RsyncProtocol(on_file, skips.skip, max_entries=bounds.max_entries,
                             on_overflow=lambda: abandon(bounds.too_many("rsync")),
                             clock=reactor)
    shown = command.executable + "".join(f" {option}" for option in options)
    log.info("[{name}] Requesting file list via {cmd}...", name=name, cmd=shown)
    try:
        reactor.spawnProcess(protocol, program, [program, *command.args], env=command.env)
    except OSError as err:
        raise ScanError(f"{command.executable}: {err}") from err
    timer = reactor.callLater(
        timeout, abandon, f"rsync: no complete listing within {timeout:g} s")
    watchdog = _Watchdog(reactor, protocol, bounds.stall,
                         lambda: abandon(bounds.stalled("rsync")))
    try:
        code = await _wait(protocol, reactor)
    finally:
        watchdog.stop()
        if timer.active():
            timer.cancel()
    skips.summarize()
    tail = tuple(protocol.stderr_tail)
    if abandoned:
        raise ScanError(abandoned, tail)
    if code < 0:
        raise ScanError(f"rsync: killed by signal {-code}", tail)
    message = exit_error(code)
    if message is not None:
        for line in tail:
            log.warn("[{name}] {line}", name=name, line=line)
        raise ScanError(message, tail)
    warnings: list[str] = []
    if code in _PARTIAL_MESSAGES:
        warnings = [*protocol.opendir_errors, _PARTIAL_MESSAGES[code]]
        for warning in warnings:
            log.warn("[{name}] {warning}", name=name, warning=warning)
    return ScanListing(files=tuple(files), warnings=tuple(warnings), skipped_lines=skips.total)


class _Watchdog:
    """Calls ``stalled`` once the child has written nothing for ``stall`` seconds."""

    def __init__(self, clock: IReactorTime, protocol: RsyncProtocol, stall: float,
                 stalled: Callable[[], None]) -> None:
        self._clock = clock
        self._protocol = protocol
        self._stall = stall
        self._stalled = stalled
        self._call = clock.callLater(stall, self._check)

    def _check(self) -> None:
        silent = self._clock.seconds() - self._protocol.last_output
        if silent >= self._stall:
            self._stalled()
        else:
            self._call = self._clock.callLater(self._stall - silent, self._check)

    def stop(self) -> None:
        if self._call.active():
            self._call.cancel()


async def _wait(protocol: RsyncProtocol, reactor: IReactorTime) -> int:
    """The exit code; on cancellation, stop the child and raise :class:`ScanAborted`."""
    waiting: Deferred[int] = Deferred(lambda _: protocol.terminate(reactor))

    def ended(code: int) -> None:
        if not waiting.called:
            waiting.callback(code)

    protocol.ended.addCallback(ended)
    try:
        return await waiting
    except CancelledError:
        raise ScanAborted() from None
