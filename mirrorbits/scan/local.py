"""The local repository ("source") scan (spec §5) and the service that schedules it.

The walk and the hashing (:mod:`mirrorbits.scan.walk`) run in the reactor's thread pool;
the commit (:mod:`mirrorbits.store.repository`) and everything else run on the reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, ParamSpec, TypeVar

from attrs import define, field, frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from txredisapi import RedisError

from mirrorbits.config import Config
from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo
from mirrorbits.progress import Progress, ProgressReport
from mirrorbits.reactors import IThreadReactor
from mirrorbits.scan.abort import Abort
from mirrorbits.scan.removals import Keeping, RemovalLimit, to_keep
from mirrorbits.scan.walk import (
    ALGORITHMS,
    LocalFile,
    ScanAborted,
    WalkResult,
    fs_path,
    hash_file,
    indexed,
    needs_hashing,
    walk_repository,
)
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.commands import batches
from mirrorbits.store.errors import DatabaseNotReady, StoreError
from mirrorbits.store.files import read_files
from mirrorbits.store.repository import BATCH, commit_repository_scan, indexed_file_count
from mirrorbits.ticking import start_loop, stop_loop

__all__ = ["Abort", "RepositoryScanner", "ScanAborted", "ScanSummary", "hash_local_file",
           "scan_repository"]

log = Logger(namespace="mirrorbits.scan.local")

FIRST_SCAN_RETRY_DELAY: Final = 1.0

T = TypeVar("T")
_P = ParamSpec("_P")


class EmptyRepository(OSError):
    """The repository holds no file while files are indexed: a periodic scan commits nothing
    (``mirrorbits-ctl refresh`` does)."""


@frozen
class ScanSummary:
    """What a scan did: files indexed, paths removed from ``FILES``, files hashed, and the
    paths it lacks that were kept indexed (:mod:`mirrorbits.scan.removals`), and why."""

    files: int
    removed: int
    hashed: int
    kept: int = 0
    kept_because: str = ""


async def scan_repository(
    client: RedisClient,
    config: Config,
    reactor: IThreadReactor,
    abort: Abort,
    rehash: bool = False,
    progress: Progress | None = None,
    announce: bool = True,
    allow_empty: bool = True,
    max_remove: RemovalLimit | None = None,
) -> ScanSummary:
    """Scan ``config.repository`` and commit it to Redis through txredisapi *client*.

    *reactor* provides the clock and the thread pool; *progress* counts the files of each
    phase (``listing``, ``checksums``, ``indexing``) for the CLI. Raises :class:`FileNotFoundError`
    (``<path>: No such file or directory``), :class:`~mirrorbits.store.errors.ScanInProgress`
    when another node holds the lock for 10 seconds, :class:`ScanAborted` when *abort* fires
    before the commit, and :class:`EmptyRepository` without ``allow_empty`` when the
    repository holds no file while files are indexed. With *max_remove*, the files the
    repository lacks stay indexed where it looks broken (:func:`~mirrorbits.scan.removals.to_keep`).
    """
    root = config.repository
    progress = progress or Progress(reactor)
    # Not repeated at info level while the same failure is retried (``announce`` false).
    log.emit(LogLevel.info if announce else LogLevel.debug, "[source] Scanning the filesystem...")
    progress.begin("listing")
    walked: WalkResult = await _in_thread(reactor, walk_repository, root, abort.event,
                                          progress.advance)
    _log_problems(walked)
    if not walked.files and not allow_empty:
        count = await indexed_file_count(client)
        if count:
            # An unmounted or not yet synced repository (a new node of a cluster, say) would
            # remove every file from the index the nodes share: no mirror would get a user.
            raise EmptyRepository(
                f"{root} holds no file while {count} are indexed: nothing removed (not "
                "mounted or not synced yet?); it is scanned again at the next interval, and "
                "'mirrorbits-ctl refresh' indexes it as it is")
    enabled = tuple(name for name in ALGORITHMS if getattr(config.hashes, name))
    infos: list[FileInfo] = []
    hashed = 0
    progress.begin("checksums", len(walked.files))
    for batch in batches(walked.files, BATCH):
        abort.check()
        previous = await read_files(client, [local.path for local in batch])
        for local, old in zip(batch, previous, strict=True):
            progress.advance()
            if old is not None and not needs_hashing(local, old, enabled, rehash):
                infos.append(indexed(local, old.sha1, old.sha256, old.md5))
                continue
            digests = await hash_local_file(reactor, root, local, enabled, abort)
            hashed += 1 if digests else 0
            infos.append(indexed(local, *(digests.get(name, "") for name in ALGORITHMS)))
    abort.check()
    log.info("[source] Indexing the files...")
    keeping = [Keeping()]

    def keep(lacking: Sequence[str], indexed_count: int) -> tuple[str, ...]:
        assert max_remove is not None
        keeping[0] = to_keep(lacking, indexed_count, max_remove, walked.empty_directories,
                             [problem.path for problem in walked.problems])
        return keeping[0].paths

    commit = await commit_repository_scan(client, reactor, abort, infos, progress,
                                          keep if max_remove is not None else None)
    log.info("[source] Indexed {files} files, {removed} removed", files=len(infos),
             removed=commit.removed)
    return ScanSummary(files=len(infos), removed=commit.removed, hashed=hashed,
                       kept=commit.kept, kept_because=keeping[0].reason if commit.kept else "")


async def hash_local_file(
    reactor: IThreadReactor, root: str, local: LocalFile, enabled: Sequence[str], abort: Abort
) -> dict[str, str]:
    """The digests of one file; empty (with a warning) when it cannot be read."""
    if not enabled:
        return {}
    try:
        digests: dict[str, str] = await _in_thread(
            reactor, hash_file, fs_path(root, local.path), enabled, abort.event
        )
    except OSError as err:
        log.warn("[source] Cannot hash {path}: {error}", path=local.path,
                 error=err.strerror or str(err))
        return {}
    for name in enabled:
        log.info("{path}: {algorithm} {digest}", path=local.path, algorithm=name.upper(),
                 digest=digests[name])
    return digests


def _in_thread(reactor: IThreadReactor, function: Callable[_P, T], *args: _P.args,
               **kwargs: _P.kwargs) -> Deferred[T]:
    return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args, **kwargs)


def _log_problems(walked: WalkResult) -> None:
    for problem in walked.problems:
        log.debug("[source] Skipped {path}: {reason}", path=problem.path, reason=problem.reason)
    if walked.problems:
        first = walked.problems[0]
        log.warn("[source] Skipped {count} entries that could not be read or named, "
                 "such as {path}: {reason}", count=len(walked.problems), path=first.path,
                 reason=first.reason)


@define(eq=False)
class RepositoryScanner(Service):
    """Scans the repository at start-up (retried every second), then periodically.

    ``get_client()`` returns a txredisapi connection handler (``convertNumbers=False``) or
    raises :class:`~mirrorbits.store.errors.DatabaseNotReady`. Scans never overlap: a
    ``refresh`` arriving during a scan waits for the next one, which serves every caller that
    arrived meanwhile.
    """

    _get_config: Callable[[], Config]
    _get_client: Callable[[], RedisClient]
    _reactor: IThreadReactor
    _abort: Abort = field(init=False)
    _loop: LoopingCall | None = field(default=None, init=False)
    _loop_minutes: int = field(default=0, init=False)
    _first_call: IDelayedCall | None = field(default=None, init=False)
    _first_done: bool = field(default=False, init=False)
    _last_error: str = field(default="", init=False)
    _repository_failing: bool = field(default=False, init=False)  # the last scan's walk failed
    _waiters: list[Deferred[ScanSummary]] = field(factory=list, init=False)
    _want_rehash: bool = field(default=False, init=False)
    _allow_empty: bool = field(default=False, init=False)  # an operator's refresh is waiting
    _remove_all: bool = field(default=False, init=False)  # the same, or a directory moved away
    _last_kept: int = field(default=0, init=False)  # files the last scan kept indexed
    _busy: bool = field(default=False, init=False)
    _idle: list[Deferred[None]] = field(factory=list, init=False)
    _indexed: list[Deferred[None]] = field(factory=list, init=False)
    _progress: Progress | None = field(default=None, init=False)
    _finished_observers: list[Callable[[], object]] = field(factory=list, init=False)

    name = "repository-scan"

    def __attrs_post_init__(self) -> None:
        self._abort = Abort(self._reactor)  # replaced at each start

    def startService(self) -> None:
        super().startService()
        self._abort = Abort(self._reactor)
        self._first_done = False
        self._first_call = self._reactor.callLater(0, self._first_attempt)

    def _first_attempt(self) -> None:
        self._first_call = None
        Deferred.fromCoroutine(self._first_scan())

    def stopService(self) -> Deferred[None]:
        """Abort a running walk or hashing ('scan aborted'); a started commit completes."""
        super().stopService()
        if self._first_call is not None and self._first_call.active():
            self._first_call.cancel()
        self._first_call = None
        self._stop_loop()
        self._abort.abort()
        if not self._busy:
            return succeed(None)
        idle: Deferred[None] = Deferred()
        self._idle.append(idle)
        return idle

    def config_changed(self) -> None:
        """Rebuild the periodic timer when ``RepositoryScanInterval`` changed."""
        interval = max(0, self._get_config().repository_scan_interval)
        if self.running and self._first_done and interval != self._loop_minutes:
            self._stop_loop()
            self._start_loop()

    async def refresh(self, rehash: bool = False, allow_empty: bool = True,
                      remove_all: bool = True) -> ScanSummary:
        """Scan now (after the running scan, if any); ``rehash`` recomputes every checksum.

        Without ``allow_empty`` (the scans of the service itself), a repository found empty
        while files are indexed is an :class:`EmptyRepository` error, not an empty index;
        without ``remove_all``, the files it lacks stay indexed where it looks broken
        (``RepositoryScanMaxRemove``, :mod:`mirrorbits.scan.removals`), said once.
        """
        self._abort.check()
        waiter: Deferred[ScanSummary] = Deferred()
        self._waiters.append(waiter)
        self._want_rehash = self._want_rehash or rehash
        self._allow_empty = self._allow_empty or allow_empty
        self._remove_all = self._remove_all or remove_all
        if not self._busy:
            self._busy = True
            Deferred.fromCoroutine(self._serve_waiters())
        return await waiter

    async def _serve_waiters(self) -> None:
        try:
            while self._waiters:
                waiters, self._waiters = self._waiters, []
                rehash, self._want_rehash = self._want_rehash, False
                allow_empty, self._allow_empty = self._allow_empty, False
                remove_all, self._remove_all = self._remove_all, False
                try:
                    summary = await self._scan(rehash, allow_empty, remove_all)
                except Exception:
                    failure = Failure()
                    for waiter in waiters:
                        waiter.errback(failure)
                else:
                    for waiter in waiters:
                        waiter.callback(summary)
                for observer in self._finished_observers:
                    observer()
        finally:
            self._busy = False
            idle, self._idle = self._idle, []
            for stopped in idle:
                stopped.callback(None)

    @property
    def busy(self) -> bool:
        """Whether a scan is running (its walk may predate the latest changes)."""
        return self._busy

    def after_each_scan(self, observer: Callable[[], object]) -> None:
        """Call ``observer()`` whenever a scan ends, successful or not."""
        self._finished_observers.append(observer)

    def progress(self) -> ProgressReport | None:
        """How far the running scan got; ``None`` when no scan runs."""
        return None if self._progress is None else self._progress.report()

    async def _scan(self, rehash: bool, allow_empty: bool, remove_all: bool) -> ScanSummary:
        self._abort.check()
        client = self._get_client()
        self._progress = Progress(self._reactor)
        config = self._get_config()
        try:
            summary = await scan_repository(
                client, config, self._reactor, self._abort, rehash, self._progress,
                announce=not self._repository_failing, allow_empty=allow_empty,
                max_remove=None if remove_all else config.repository_scan_max_remove)
        finally:
            self._progress = None
        self._say_kept(summary)
        return summary

    def _say_kept(self, summary: ScanSummary) -> None:
        """One warning when scans start keeping files the repository lacks, or keep another
        number of them (debug while it stays the same)."""
        if summary.kept:
            level = LogLevel.debug if summary.kept == self._last_kept else LogLevel.warn
            log.emit(level, "[source] Kept {kept} indexed files the repository lacks ({why}); "
                     "looked for again at the next scan, 'mirrorbits-ctl refresh' removes them",
                     kept=summary.kept, why=summary.kept_because)
        self._last_kept = summary.kept

    @property
    def indexed(self) -> bool:
        """Whether the repository was indexed since the start (the CLI can scan mirrors)."""
        return self._first_done

    def when_indexed(self) -> Deferred[None]:
        """Fires once the first scan since the start succeeded."""
        if self._first_done:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._indexed.append(waiter)
        return waiter

    async def _first_scan(self) -> None:
        if await self._scan_logged():
            self._first_done = True
            waiters, self._indexed = self._indexed, []
            for waiter in waiters:
                waiter.callback(None)
            self._start_loop()
        elif self.running:
            self._first_call = self._reactor.callLater(FIRST_SCAN_RETRY_DELAY,
                                                       self._first_attempt)

    async def _scan_logged(self) -> bool:
        """One scan whose errors are logged, never raised; True when it succeeded."""
        try:
            await self.refresh(allow_empty=False, remove_all=False)
        except ScanAborted:
            return False
        except (OSError, StoreError, RedisError) as err:
            message = str(err) or type(err).__name__
            # A start usually comes before the database is ready: the first scan simply
            # waits for it (retried every second); the Redis service reports an outage.
            waiting = not self._first_done and isinstance(err, DatabaseNotReady)
            repeated = message == self._last_error
            level = LogLevel.debug if waiting or repeated else LogLevel.error
            log.emit(level, "[source] Repository scan failed: {error}", error=message)
            self._last_error = message
            self._repository_failing = isinstance(err, OSError)
            return False
        except Exception:
            outage.report(log, "[source] Repository scan", Failure(),
                          "[source] Repository scan failed")
            self._last_error = ""
            return False
        self._last_error = ""
        self._repository_failing = False
        return True

    def _start_loop(self) -> None:
        self._loop_minutes = max(0, self._get_config().repository_scan_interval)
        if not self.running or self._loop_minutes == 0:
            return
        self._loop = start_loop(lambda: Deferred.fromCoroutine(self._scan_logged()),
                                self._reactor, self._loop_minutes * 60, now=False, log=log,
                                stopped="[source] Periodic scan stopped")

    def _stop_loop(self) -> None:
        stop_loop(self._loop)
        self._loop = None
