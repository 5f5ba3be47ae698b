"""Scheduling of mirror scans (spec §6.1): the monitor's periodic scans and the CLI ``scan``.

Every second the monitor offers each enabled mirror whose last scan attempt is older than
``ScanInterval`` minutes to at most ``ConcurrentSync`` concurrent scans (a busy mirror, or a
full set of workers, is retried on the next tick). A scan tries rsync, then FTP when rsync
failed for any reason but an abort; the trace file is fetched alongside (spec §6.6). A mirror
with neither an rsync nor an FTP URL is scanned through its HTTP index pages
(:mod:`mirrorbits.scan.http`; the reference reported ``no suitable URL for the scan``).

A monitor scan that fails is tried again sooner than ``ScanInterval``: 1 min after the
failure, then 2, 4... (:mod:`mirrorbits.scan.retry`; ``lastSync`` keeps the reference's
meaning, spec §20 item 24). Any successful scan puts the mirror back on ``ScanInterval``; the
CLI's failures do not count.

In a cluster (spec §15.1) the monitor only schedules the mirrors ``handles(mirror_id)``
assigns to this node; the CLI's ``scan`` works on any mirror from any node.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final, TypeVar

from attrs import define, field, frozen
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from mirrorbits.config import Config
from mirrorbits.logs import Logger
from mirrorbits.model import PROTOCOL_FTP, PROTOCOL_HTTP, PROTOCOL_RSYNC, Mirror
from mirrorbits.progress import Progress, ProgressReport
from mirrorbits.reactors import IConnectingReactor, IScanReactor
from mirrorbits.scan.bounds import DEFAULT_BOUNDS, ScanBounds
from mirrorbits.scan.commit import ScanResult, scan_mirror
from mirrorbits.scan.http import HttpScanner, scan_url
from mirrorbits.scan.retry import FIRST_RETRY, ScanRetries, describe_delay
from mirrorbits.scan.rsync import ScanError, ScanListing, rsync_list
from mirrorbits.scan.rsync_options import options_for
from mirrorbits.scan.trace import fetch_trace
from mirrorbits.scan.walk import ScanAborted
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import DatabaseNotReady, ScanInProgress, StoreError
from mirrorbits.store.files import repository_indexed
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.ticking import start_loop, stop_loop

__all__ = [
    "EXPECTED_FAILURES",
    "NOT_INDEXED",
    "NO_URL",
    "FailedPrecondition",
    "Lister",
    "MirrorScanner",
    "ScanOutcome",
    "ftp_lister",
    "is_due",
    "scan_plan",
]

_T = TypeVar("_T")

log = Logger(namespace="mirrorbits.scan.scheduler")

#: (url, timeout in seconds, mirror name, progress) -> the listing; raises ScanError or
#: ScanAborted. The lister counts the files it lists on the progress.
Lister = Callable[[str, float, str, Progress], Awaitable[ScanListing]]

TICK: Final = 1.0
#: Bound of one listing when no timeout is given (rsync itself gives up on a 30 s stall).
DEFAULT_TIMEOUT: Final = 6 * 3600.0
#: Longest wait for the running scans to record their abort when the service stops.
STOP_GRACE: Final = 10.0
NO_URL: Final = "no suitable URL for the scan"
NOT_INDEXED: Final = "local repository not yet indexed. You should run 'refresh' first!"
PROTOCOLS: Final = ("ALL", "RSYNC", "FTP", "HTTP")


class FailedPrecondition(Exception):
    """The CLI scan cannot run yet (the local repository was never indexed)."""


#: The failures of :meth:`MirrorScanner.scan` that its message explains (no traceback).
EXPECTED_FAILURES: Final = (FailedPrecondition, ScanError, ScanAborted)


@frozen
class ScanOutcome:
    """What a mirror scan reports to the CLI."""

    enabled: bool
    files_indexed: int
    known_indexed: int
    removed: int
    tz_offset_ms: int = 0


def is_due(mirror: Mirror, now: float, interval_minutes: int,
           retry_at: float | None = None) -> bool:
    """Whether the monitor should scan ``mirror`` (never scanned: at once; after a failed
    scan: at ``retry_at`` too)."""
    if not mirror.enabled:
        return False
    if mirror.last_sync is None:
        return True
    if retry_at is not None and now >= retry_at:
        return True
    return now - mirror.last_sync > interval_minutes * 60


def scan_plan(mirror: Mirror, protocol: str) -> list[tuple[int, str]]:
    """The (protocol, URL) attempts in order: rsync then FTP, or only the forced one.

    The HTTP index pages are scanned when forced, or (``ALL``) when the mirror has neither
    an rsync nor an FTP URL.
    """
    protocol = protocol.upper()
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown scan protocol {protocol!r}")
    plan: list[tuple[int, str]] = []
    if protocol in ("ALL", "RSYNC") and mirror.rsync_url:
        plan.append((PROTOCOL_RSYNC, mirror.rsync_url))
    if protocol in ("ALL", "FTP") and mirror.ftp_url:
        plan.append((PROTOCOL_FTP, mirror.ftp_url))
    if mirror.http_url and (protocol == "HTTP" or (protocol == "ALL" and not plan)):
        plan.append((PROTOCOL_HTTP, scan_url(mirror)))
    return plan


def ftp_lister(reactor: IConnectingReactor,
               bounds: Callable[[], ScanBounds] = lambda: DEFAULT_BOUNDS) -> Lister:
    """``mirrorbits.scan.ftp.ftp_list`` if it exists, else a lister that always fails.

    ``bounds()`` gives the limits of each listing (read when it starts)."""
    try:
        module = importlib.import_module("mirrorbits.scan.ftp")
        ftp_list: Callable[..., Awaitable[ScanListing]] | None = module.ftp_list
    except (ImportError, AttributeError):
        ftp_list = None

    async def listing(url: str, timeout: float, name: str, progress: Progress) -> ScanListing:
        if ftp_list is None:
            raise ScanError("ftp scanning not available")
        result: ScanListing = await ftp_list(reactor, url, timeout, name=name,
                                             progress=progress, bounds=bounds())
        return result

    return listing


@define(eq=False)
class MirrorScanner(Service):
    """Scans mirrors on schedule (while running) and on demand (:meth:`scan`).

    ``get_client()`` returns a txredisapi handler or raises :class:`DatabaseNotReady`.
    ``listers`` maps a protocol to its scanner (default: rsync and, if available, FTP);
    ``trace`` fetches the trace file (default: :func:`fetch_trace`), ``commit`` runs one
    locked scan (default: :func:`~mirrorbits.scan.commit.scan_mirror`); ``handles(mirror_id)``
    tells whether this node's monitor scans a mirror (cluster; default: every mirror).
    """

    _get_config: Callable[[], Config]
    _get_client: Callable[[], RedisClient]
    _mirrors: MirrorStore
    _reactor: IScanReactor
    _listers: Mapping[int, Lister] | None = None
    _trace: Callable[[RedisClient, Mirror, str], Awaitable[object]] | None = None
    _commit: Callable[..., Awaitable[ScanResult]] = scan_mirror
    _handles: Callable[[int], bool] = lambda _mirror_id: True
    # Told (mirror id, seconds, files listed) after each successful scan (the metrics).
    _on_scanned: Callable[[int, float, int], None] | None = None
    _running: dict[int, Deferred[ScanResult]] = field(factory=dict, init=False)
    _progress: dict[int, Progress] = field(factory=dict, init=False)
    _monitor_scans: set[int] = field(factory=set, init=False)
    _loop: LoopingCall | None = field(default=None, init=False)
    _no_url: set[int] = field(factory=set, init=False)
    _retries: ScanRetries = field(factory=ScanRetries, init=False)

    name = "mirror-scan"

    def __attrs_post_init__(self) -> None:
        if self._listers is None:
            reactor = self._reactor

            async def rsync(url: str, timeout: float, name: str,
                            progress: Progress) -> ScanListing:
                options = options_for(self._get_config().rsync_options, name)
                return await rsync_list(reactor, url, timeout, name=name, progress=progress,
                                        options=options, bounds=self._bounds())

            http = HttpScanner(reactor, lambda: self._get_config().http_scan,
                               max_entries=lambda: self._get_config().max_scan_entries)
            self._listers = {PROTOCOL_RSYNC: rsync,
                             PROTOCOL_FTP: ftp_lister(reactor, self._bounds),
                             PROTOCOL_HTTP: http.list}
        if self._trace is None:
            reactor = self._reactor

            async def trace(client: RedisClient, mirror: Mirror, location: str) -> int | None:
                return await fetch_trace(
                    reactor, client, mirror, location,
                    other_hosts=self._get_config().allow_redirect_hosts)

            self._trace = trace

    def _bounds(self) -> ScanBounds:
        return ScanBounds(max_entries=self._get_config().max_scan_entries)

    @property
    def scanning(self) -> frozenset[int]:
        """IDs of the mirrors being scanned by this node."""
        return frozenset(self._running)

    def progress(self, mirror_id: int) -> ProgressReport | None:
        """How far this node's scan of a mirror got; ``None`` when it is not scanning it."""
        progress = self._progress.get(mirror_id)
        return None if progress is None else progress.report()

    def startService(self) -> None:
        super().startService()
        self._loop = start_loop(self._tick, self._reactor, TICK, now=True, log=log,
                                stopped="The mirror scan monitor stopped")

    def stopService(self) -> Deferred[None]:
        """Stop scheduling and abort the running scans (their rsync is killed)."""
        super().stopService()
        stop_loop(self._loop)
        self._loop = None
        running = list(self._running.values())
        if not running:
            return succeed(None)
        for scan in running:
            scan.cancel()
        done = DeferredList(running, consumeErrors=True)
        done.addTimeout(STOP_GRACE, self._reactor)
        return done.addCallbacks(lambda _: None, lambda _: None)

    def _tick(self) -> Deferred[None]:
        ticking = Deferred.fromCoroutine(self._schedule())
        ticking.addErrback(lambda failure: outage.report(log, "Scan scheduling", failure,
                                                         "Mirror scan scheduling failed"))
        return ticking

    async def _schedule(self) -> None:
        """One monitor tick: start the due scans while workers are free."""
        try:
            self._get_client()
        except DatabaseNotReady:
            return
        config = self._get_config()
        now = self._reactor.seconds()
        mirrors = await self._mirrors.all_mirrors()
        self._retries.keep(mirrors, self._handles, self._running, config.scan_interval * 60)
        due = _due(mirrors, now, config.scan_interval, self._running, self._retries)
        if due and not await repository_indexed(self._get_client()):
            # A scan now would find no file of the repository: HANDLEDFILES_<id> would stay
            # empty until the next one, and health checks have nothing to ask for till then.
            return
        for mirror in due:
            if not self._handles(mirror.id):
                continue
            if not scan_plan(mirror, "ALL"):
                if mirror.id not in self._no_url:  # reported once, not every second
                    self._no_url.add(mirror.id)
                    log.error("[{name}] {error}", name=mirror.name, error=NO_URL)
                continue
            self._no_url.discard(mirror.id)
            if len(self._monitor_scans) >= max(1, config.concurrent_sync):
                break
            self._monitor_scans.add(mirror.id)
            scan = self._start(mirror, "ALL", DEFAULT_TIMEOUT)
            scan.addErrback(self._log_monitor_failure, mirror)

    def _log_monitor_failure(self, failure: Failure, mirror: Mirror) -> None:
        """Log a monitor scan's failure; one of the mirror's own sets its next attempt."""
        if failure.check(ScanInProgress):
            log.debug("[{name}] scan already in progress on another node", name=mirror.name)
            self._retries.postpone(mirror.id, self._reactor.seconds() + FIRST_RETRY)
        elif failure.check(ScanAborted, CancelledError, StoreError):
            pass  # stopping, or Redis failing: already logged by scan_mirror
        elif outage.redis_cause(failure) is not None:  # said once per outage
            outage.report(log, "Scan scheduling", failure, "[{name}] Scan failed",
                          name=mirror.name)
        else:
            times, retry = self._retry_later(mirror)
            if failure.check(ScanError):  # its error is already logged by scan_mirror
                log.info("[{name}] Scan failed{times}; retried in {retry}",
                         name=mirror.name, times=times, retry=retry)
            else:  # a bug: with its traceback
                outage.report(log, "Scan scheduling", failure,
                              "[{name}] Scan failed{times}; retried in {retry}",
                              name=mirror.name, times=times, retry=retry)

    def _retry_later(self, mirror: Mirror) -> tuple[str, str]:
        """Count a failed monitor scan: (`` N times in a row`` or nothing, the delay)."""
        now = self._reactor.seconds()
        failed = self._retries.failed(mirror.id, now, self._get_config().scan_interval * 60)
        times = "" if failed.count == 1 else f" {failed.count} times in a row"
        return times, describe_delay(failed.retry_at - now)

    def _start(self, mirror: Mirror, protocol: str, timeout: float) -> Deferred[ScanResult]:
        progress = Progress(self._reactor)
        self._progress[mirror.id] = progress
        started = self._reactor.seconds()
        scan = Deferred.fromCoroutine(self._scan_one(mirror, protocol, timeout, progress))
        self._running[mirror.id] = scan

        def finished(result: _T) -> _T:
            if isinstance(result, ScanResult):
                self._retries.succeeded(mirror.id)
                if self._on_scanned is not None:
                    self._on_scanned(mirror.id, self._reactor.seconds() - started,
                                     result.files)
            self._running.pop(mirror.id, None)
            self._progress.pop(mirror.id, None)
            self._monitor_scans.discard(mirror.id)
            return result

        scan.addBoth(finished)
        return scan

    async def _scan_one(
        self, mirror: Mirror, protocol: str, timeout: float, progress: Progress
    ) -> ScanResult:
        client = self._get_client()
        plan = scan_plan(mirror, protocol)
        if not plan:
            log.error("[{name}] {error}", name=mirror.name, error=NO_URL)
            raise ScanError(NO_URL)
        location = self._get_config().trace_file_location
        trace_started = False

        def start_trace() -> None:
            # Once the lock is held: a mirror scanned by another node is skipped entirely.
            nonlocal trace_started
            if trace_started or not location or self._trace is None:
                return
            trace_started = True
            tracing = Deferred.fromCoroutine(_traced(self._trace(client, mirror, location)))
            tracing.addErrback(
                lambda failure: log.failure("[{name}] trace file", failure, name=mirror.name))

        assert self._listers is not None
        last: Exception = ScanError(NO_URL)
        for proto, url in plan:
            lister = self._listers[proto]

            async def list_files(name: str, lister: Lister = lister, url: str = url) -> ScanListing:
                start_trace()
                return await lister(url, timeout, name, progress)

            try:
                fix_tz = self._get_config().fix_timezone_offsets
                return await self._commit(client, self._reactor, mirror.id, proto, list_files,
                                          fix_timezone_offsets=fix_tz, progress=progress)
            except (ScanAborted, CancelledError, StoreError):
                raise
            except Exception as err:
                last = err
        raise last

    async def scan(
        self, mirror_id: int, auto_enable: bool, protocol: str, timeout: float | None
    ) -> ScanOutcome:
        """Scan one mirror now (the CLI); with ``auto_enable`` a success enables it.

        Raises :class:`FailedPrecondition` before the first local scan, ``MirrorNotFound``,
        ``ScanInProgress`` (also when this node is scanning it) or the scan's error.
        """
        client = self._get_client()
        if not await repository_indexed(client):
            raise FailedPrecondition(NOT_INDEXED)
        mirror = await self._mirrors.get_mirror(mirror_id)
        if mirror_id in self._running:
            raise ScanInProgress("scan already in progress")
        limit = timeout if timeout is not None and timeout > 0 else DEFAULT_TIMEOUT
        result = await self._start(mirror, protocol, limit)
        enabled = False
        if auto_enable:
            if not mirror.enabled:
                await self._mirrors.set_enabled(mirror_id, True)
            enabled = True
        return ScanOutcome(enabled=enabled, files_indexed=result.files,
                           known_indexed=result.known, removed=result.removed,
                           tz_offset_ms=result.tz_offset_ms)


def _due(
    mirrors: Iterable[Mirror], now: float, interval_minutes: int, busy: Mapping[int, object],
    retries: ScanRetries,
) -> list[Mirror]:
    return [m for m in mirrors if m.id not in busy
            and is_due(m, now, interval_minutes, retries.retry_at(m.id))]


async def _traced(fetching: Awaitable[object]) -> None:
    await fetching
