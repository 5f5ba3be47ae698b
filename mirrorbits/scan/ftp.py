"""The FTP mirror scanner (spec §6.3), built on Twisted's ``FTPClient``.

One control connection, passive data connections (``PASV`` only: Twisted has no ``EPSV``, so an
IPv6-only FTP mirror needs rsync, twisted#9085), directories walked with an explicit stack.
Each directory is entered with ``CWD`` and listed without an argument (``MLSD`` when ``FEAT``
advertises ``MLST``, else ``LIST -a``), so names with spaces or a leading ``-`` cannot be
misread as options. The whole scan is bounded by ``timeout``; every step (connect, greeting,
each command, each listing) fails after ``stall`` seconds without a byte received on the control
or data connection, and the listing after ``max_entries`` lines in all
(:class:`~mirrorbits.scan.bounds.ScanBounds`). Names are kept as bytes on the wire and decoded with
:func:`~mirrorbits.scan.ftp_listing.decode_name` (UTF-8, latin-1 fallback).

Differences from the reference, on purpose:

* ``MDTM`` is sent only for files whose listing gave no time (``MLSD`` without ``modify``,
  or ``LIST``): one command per directory instead of one per file on MLSD servers;
* a subdirectory the server refuses (5xx on ``CWD`` or the listing) is skipped with a warning
  instead of failing the whole scan; the top directory still fails it;
* a name longer than 4096 bytes (with its directory) is skipped and counted
  (:func:`~mirrorbits.scan.bounds.name_problem`), a directory so named not entered;
* the walk is bounded: :data:`MAX_DEPTH` levels, :data:`MAX_DIRECTORIES` directories, and a
  directory whose listing (or MLSD ``unique`` fact) repeats one of its ancestors' is a loop
  (a symbolic link the server follows) and is not entered;
* ``LIST`` dates (server local time, minute or day precision) are parsed but not used as
  mtimes: as in the reference, a file without ``MDTM`` or ``MLSD`` time has mtime 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Final, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.protocols.ftp import CommandFailed, FTPClient
from twisted.python.failure import Failure

from mirrorbits.connect import connect_quietly
from mirrorbits.logs import Logger
from mirrorbits.progress import Progress
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.scan.bounds import DEFAULT_BOUNDS, ScanBounds, SkipTally, name_problem
from mirrorbits.scan.ftp_listing import (
    DIR,
    DirEntry,
    FtpTarget,
    Skipped,
    decode_name,
    parse_feat,
    parse_ftp_url,
    parse_list_line,
    parse_mdtm,
    parse_mlsd_line,
)
from mirrorbits.scan.rsync import LineBuffer, ScanError, ScanListing
from mirrorbits.scan.rsync_listing import ListedFile
from mirrorbits.scan.walk import ScanAborted

__all__ = ["MAX_DEPTH", "MAX_DIRECTORIES", "MAX_LISTING_BYTES", "ftp_list"]

log = Logger(namespace="mirrorbits.scan.ftp")

MAX_DEPTH: Final = 64
#: Lines of one control-connection reply kept (FEAT answers a few dozen).
MAX_REPLY_LINES: Final = 10_000
MAX_DIRECTORIES: Final = 500_000
#: Largest listing of one directory read (bytes).
MAX_LISTING_BYTES: Final = 256 * 1024 * 1024
MS_NS: Final = 1_000_000
S_NS: Final = 1_000_000_000
RFC3659_WARNING: Final = (
    "This server does not support some of the RFC 3659 extensions, "
    "consider using rsync instead."
)

T = TypeVar("T")


class _Client(FTPClient):
    """``FTPClient`` whose login is driven by the scanner and whose data connections use the
    given reactor; ``greeted`` fires with the greeting (or fails if the connection does)."""

    def __init__(self, reactor: IConnectingReactor, activity: Callable[[], None],
                 overflow: Callable[[], None]) -> None:
        self.greeted: Deferred[list[str]] = Deferred()
        super().__init__(passive=1)
        self.connectFactory = reactor.connectTCP  # type: ignore[method-assign]
        self._activity = activity
        self._overflow = overflow

    def dataReceived(self, data: bytes) -> None:
        self._activity()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(line)
        if len(self.response) > MAX_REPLY_LINES:  # a reply without end: the scan ends
            self.response = []
            transport: Any = self.transport  # ITCPTransport (abortConnection)
            if transport is not None:
                transport.abortConnection()
            self._overflow()

    def queueLogin(self, username: str, password: str) -> None:
        """Nothing: :func:`ftp_list` sends USER/PASS itself, one step at a time."""

    def _cb_greeting(self, greeting: list[str]) -> None:
        super()._cb_greeting(greeting)
        if not self.greeted.called:
            self.greeted.callback(greeting)

    def fail(self, error: Failure) -> None:
        self._fail_greeting(error)
        super().fail(error)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._fail_greeting(reason)
        super().connectionLost(reason)

    def _fail_greeting(self, error: Failure) -> None:
        if not self.greeted.called:
            self.greeted.errback(error)


class _ListingReceiver(Protocol):
    """Collects the lines of one data connection (capped in length, in total size and in
    number: past ``max_lines``, ``overflow`` is called once and nothing more is kept)."""

    def __init__(self, max_lines: int, activity: Callable[[], None],
                 overflow: Callable[[], None]) -> None:
        self.buffer = LineBuffer()
        self.lines: list[bytes] = []
        self.received = 0
        self.too_big = False
        self.too_many = False
        self._max_lines = max_lines
        self._activity = activity
        self._overflow = overflow

    def dataReceived(self, data: bytes) -> None:
        self._activity()
        if self.too_big or self.too_many:
            return
        self.received += len(data)
        if self.received > MAX_LISTING_BYTES:
            self.too_big = True
            self.abort()
            return
        self.lines.extend(self.buffer.feed(data))
        if len(self.lines) > self._max_lines:
            self.too_many = True
            del self.lines[self._max_lines + 1:]
            self.abort()
            self._overflow()

    def abort(self) -> None:
        transport: Any = self.transport  # ITCPTransport (abortConnection)
        if transport is not None:
            transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lines.extend(self.buffer.flush())


def _describe(error: BaseException, timeout: float) -> str:
    """A short text for an error met during one step."""
    if isinstance(error, ConnectionLost) and len(error.args) > 1:
        inner = error.args[1]
        if isinstance(inner, Failure) and inner.value is not None:
            return _describe(inner.value, timeout)
    if isinstance(error, CommandFailed) and error.args:
        lines = error.args[0]
        if isinstance(lines, list) and lines:
            return str(lines[-1])
    if isinstance(error, (TimeoutError, DeferredTimeoutError)):
        return f"no reply within {timeout:g} s"
    text = str(error).strip()
    return text or type(error).__name__


def _reply_code(error: BaseException) -> str:
    """The reply code of a refused command (``""`` if the error is not a refusal)."""
    if isinstance(error, ConnectionLost) and len(error.args) > 1:
        inner = error.args[1]
        if isinstance(inner, Failure) and inner.value is not None:
            return _reply_code(inner.value)
    if isinstance(error, CommandFailed) and error.args and error.args[0]:
        return str(error.args[0][-1])[:3]
    return ""


class _Refused(Exception):
    """A command the server answered with an error reply."""

    def __init__(self, step: str, detail: str, code: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.code = code


class _Session:
    """One logged-in control connection and the steps of a scan.

    ``timeout`` bounds the whole scan; a step also fails once nothing has been received for
    ``bounds.stall`` seconds; the listings together may have ``bounds.max_entries`` lines.
    """

    def __init__(self, reactor: IConnectingReactor, timeout: float, bounds: ScanBounds) -> None:
        self.reactor = reactor
        self.client = _Client(reactor, self.touch, lambda: self.give_up(
            f"ftp error: a reply longer than {MAX_REPLY_LINES} lines, scan abandoned"))
        self.timeout = timeout
        self.bounds = bounds
        self.deadline = reactor.seconds() + timeout
        self.last_activity = reactor.seconds()
        self.entries = 0
        self.receiver: _ListingReceiver | None = None
        self._give_up: Callable[[str], None] = lambda why: None

    def touch(self) -> None:
        self.last_activity = self.reactor.seconds()

    def give_up(self, why: str) -> None:
        """End the running step with ``ScanError(why)``."""
        self._give_up(why)

    async def step(self, what: str, deferred: Deferred[T]) -> T:
        """Wait for ``deferred`` (within the scan's time and the stall bound); errors become
        :class:`_Refused` (error reply) or :class:`ScanError`."""
        reasons: list[str] = []

        def give_up(why: str) -> None:
            if not deferred.called and not reasons:
                reasons.append(why)
                deferred.cancel()

        self._give_up = give_up
        self.touch()  # the silence is counted from the start of the step
        remaining = self.deadline - self.reactor.seconds()
        deadline = self.reactor.callLater(
            max(remaining, 0.0), give_up,
            f"ftp error {what}: no complete listing within {self.timeout:g} s")
        calls = [deadline]

        def check() -> None:
            silent = self.reactor.seconds() - self.last_activity
            if silent >= self.bounds.stall:
                give_up(self.bounds.stalled(f"ftp error {what}"))
            else:
                calls.append(self.reactor.callLater(self.bounds.stall - silent, check))

        calls.append(self.reactor.callLater(self.bounds.stall, check))
        try:
            return await deferred
        except CancelledError:
            if reasons:
                raise ScanError(reasons[0]) from None
            raise
        except Exception as err:  # every failure of a step ends the scan or is a refusal
            code = _reply_code(err)
            detail = _describe(err, self.timeout)
            if code:
                raise _Refused(what, detail, code) from err
            raise ScanError(f"ftp error {what}: {detail}") from err
        finally:
            self._give_up = lambda why: None
            for call in calls:
                if call.active():
                    call.cancel()

    async def command(self, text: str, what: str = "") -> list[str]:
        """Send one command; ``what`` names it in errors (default: the command itself)."""
        deferred = self.client.queueStringCommand(text)
        result: list[str] = await self.step(what or text, deferred)
        return result

    async def listing(self, command: str) -> tuple[list[bytes], int]:
        """The lines of one listing and the number of over-long lines dropped."""
        too_many = self.bounds.too_many("ftp")
        receiver = _ListingReceiver(self.bounds.max_entries - self.entries, self.touch,
                                    lambda: self.give_up(too_many))
        self.receiver = receiver
        try:
            await self.step(command, self.client.receiveFromConnection([command], receiver))
        finally:
            receiver.abort()  # whatever the server still sends is not read
        if receiver.too_big:
            raise ScanError(f"ftp error {command}: listing larger than {MAX_LISTING_BYTES} bytes")
        if receiver.too_many:
            raise ScanError(too_many)
        self.entries += len(receiver.lines) + receiver.buffer.overlong
        return receiver.lines, receiver.buffer.overlong


def _wire(raw: bytes) -> str:
    """Bytes as the text ``FTPClient`` sends unchanged (it encodes commands as latin-1)."""
    return raw.decode("latin-1")


def _fingerprint(entries: list[DirEntry]) -> bytes:
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.name):
        digest.update(b"%s\0%s\0%d\0%d\n" % (entry.name, entry.kind.encode(), entry.size,
                                                entry.mod_time_ns))
    return digest.digest()


async def ftp_list(
    reactor: IConnectingReactor, url: str, timeout: float, *, name: str = "",
    progress: Progress | None = None, bounds: ScanBounds = DEFAULT_BOUNDS,
) -> ScanListing:
    """List the files under ``url`` (``ftp://[user[:pass]@]host[:port]/path/``).

    ``progress`` counts the files listed; ``bounds`` limits the entries and the silence.

    Raises :class:`ScanError` (``ftp error ...``) on failure, :class:`ScanAborted` when
    cancelled; the control connection is closed in every case.
    """
    try:
        target = parse_ftp_url(url)
    except ValueError as err:
        raise ScanError(str(err)) from err
    session = _Session(reactor, timeout, bounds)
    client = session.client
    endpoint = HostnameEndpoint(reactor, target.host, target.port,
                                timeout=min(timeout, bounds.stall))
    where = f"{target.host}:{target.port}"
    try:
        await session.step(f"connecting to {where}", connect_quietly(endpoint, client))
        return await _scan(session, target, name, progress or Progress(reactor))
    except CancelledError:
        raise ScanAborted() from None
    except _Refused as err:
        raise ScanError(f"ftp error {err}") from None
    finally:
        transport: Any = client.transport  # ITCPTransport (abortConnection)
        if transport is not None:
            transport.abortConnection()
        if session.receiver is not None:
            session.receiver.abort()


async def _scan(
    session: _Session, target: FtpTarget, name: str, progress: Progress
) -> ScanListing:
    await session.step("waiting for the greeting", session.client.greeted)
    reply = await session.command("USER " + _wire(target.user.encode()))
    if reply[-1].startswith("331"):
        await session.command("PASS " + _wire(target.password.encode()), "PASS")
    elif not reply[-1].startswith("230"):
        raise ScanError(f"ftp error USER: {reply[-1]}")
    await session.command("TYPE I")
    try:
        features = parse_feat(await session.command("FEAT"))
    except _Refused:
        features = frozenset()
    warnings: list[str] = []
    if "MLST" not in features or "MDTM" not in features:
        log.warn("[{name}] {warning}", name=name, warning=RFC3659_WARNING)
        warnings.append(RFC3659_WARNING)
    log.info("[{name}] Requesting file list via ftp...", name=name)
    walker = _Walker(session, target, name, use_mlsd="MLST" in features,
                     use_mdtm="MDTM" in features, warnings=warnings, progress=progress)
    try:
        files = await walker.walk()
    finally:
        walker.skips.summarize()
    with suppress(ScanError, _Refused):
        await session.command("QUIT")
    precision = MS_NS if walker.sub_second else S_NS
    return ScanListing(files=tuple(files), precision_ns=precision, warnings=tuple(warnings),
                       skipped_lines=walker.skips.total)


class _Walker:
    """The recursive walk of one scan (explicit stack, bounded)."""

    def __init__(self, session: _Session, target: FtpTarget, name: str, *, use_mlsd: bool,
                 use_mdtm: bool, warnings: list[str], progress: Progress) -> None:
        self.session = session
        self.progress = progress
        self.base = target.path.rstrip("/").encode("utf-8")
        self.name = name
        self.use_mlsd = use_mlsd
        self.use_mdtm = use_mdtm
        self.list_command = "MLSD" if use_mlsd else "LIST -a"
        self.warnings = warnings
        self.skips = SkipTally(log, name, "ftp listing")
        self.sub_second = False

    async def walk(self) -> list[ListedFile]:
        files: list[ListedFile] = []
        self.progress.begin("listing")
        # (path relative to the URL path, depth, ancestors' fingerprints and unique facts)
        stack: list[tuple[bytes, int, tuple[bytes | str, ...]]] = [(b"", 0, ())]
        visited = 0
        while stack:
            rel, depth, ancestors = stack.pop()
            visited += 1
            if visited > MAX_DIRECTORIES:
                raise ScanError(f"ftp error: more than {MAX_DIRECTORIES} directories")
            entries = await self._list_dir(rel)
            if entries is None:
                continue
            fingerprint = _fingerprint(entries)
            if fingerprint in ancestors:
                self._warn(f"directory loop at {decode_name(rel)}, not entered")
                continue
            here = (*ancestors, fingerprint)
            subdirs: list[tuple[bytes, int, tuple[bytes | str, ...]]] = []
            for entry in entries:
                path = rel + b"/" + entry.name
                problem = name_problem(decode_name(path))
                if problem is not None:
                    self._skip(entry.name, problem)
                    continue
                if entry.kind == DIR:
                    if entry.unique and entry.unique in here:
                        self._warn(f"directory loop at {decode_name(path)}, not entered")
                    elif depth >= MAX_DEPTH:
                        self._warn(f"{decode_name(path)} is deeper than {MAX_DEPTH} levels")
                    else:
                        marks = (entry.unique,) if entry.unique else ()
                        subdirs.append((path, depth + 1, (*here, *marks)))
                    continue
                files.append(await self._file(path, entry))
                self.progress.advance()
            stack.extend(reversed(subdirs))
        return files

    async def _list_dir(self, rel: bytes) -> list[DirEntry] | None:
        """The entries of one directory; ``None`` if a subdirectory is refused."""
        directory = _wire(self.base + rel or b"/")
        try:
            await self.session.command("CWD " + directory)
            try:
                lines, overlong = await self.session.listing(self.list_command)
            except _Refused as err:
                if self.list_command != "LIST -a" or not err.code.startswith("5"):
                    raise
                self.list_command = "LIST"  # the server does not take options
                lines, overlong = await self.session.listing(self.list_command)
        except _Refused as err:
            if err.code.startswith("5") and rel:
                self._warn(f"skipping {decode_name(rel)}: {err}")
                return None
            raise
        for _ in range(overlong):
            self._skip(b"", "line too long")
        now_s = int(self.session.reactor.seconds())
        entries: list[DirEntry] = []
        for line in lines:
            parsed = parse_mlsd_line(line) if self.use_mlsd else parse_list_line(line, now_s)
            if isinstance(parsed, Skipped):
                if not parsed.expected:
                    self._skip(line, parsed.reason)
            else:
                entries.append(parsed)
        return entries

    async def _file(self, path: bytes, entry: DirEntry) -> ListedFile:
        mod_time_ns = entry.mod_time_ns if self.use_mlsd else 0
        sub_second = entry.precision_ns == MS_NS
        if self.use_mdtm and mod_time_ns == 0:
            try:
                parsed = parse_mdtm(await self.session.command("MDTM " + _wire(entry.name)))
            except _Refused:
                parsed = None
            if parsed is not None:
                mod_time_ns, sub_second = parsed
        if mod_time_ns and sub_second:
            self.sub_second = True
        return ListedFile(path=decode_name(path), size=entry.size, mod_time_ns=mod_time_ns)

    def _skip(self, line: bytes, reason: str) -> None:
        self.skips.skip(line, reason)

    def _warn(self, warning: str) -> None:
        if len(self.warnings) < 1000:
            self.warnings.append(warning)
        log.warn("[{name}] {warning}", name=self.name, warning=warning)
