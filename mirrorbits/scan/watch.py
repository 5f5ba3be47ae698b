"""Watching the local repository (inotify): changes are published within a second.

A file closed after writing, moved in, moved away or deleted is looked at again (``lstat``,
hashed in the thread pool when its size or time changed) and only its own ``FILE_<path>``
and ``FILES`` entry are updated (:func:`~mirrorbits.store.repository.commit_repository_paths`):
the caches then stop sending users to mirrors whose copy no longer matches. Events are only
hints: each path's current state is read when its batch runs, so a burst of events for one
path costs one look. What inotify cannot tell exactly (a queue overflow, a directory moved
away, more than :data:`MAX_PENDING` waiting paths) falls back to a full scan.
See docs/freshness.md.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from collections.abc import Callable, Sequence
from typing import Final

from attrs import define, field, frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    INotify,
)
from twisted.internet.interfaces import IDelayedCall, IReactorFDSet
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.python.filepath import FilePath

from mirrorbits.config import Config
from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo
from mirrorbits.reactors import IThreadReactor, IWatchReactor
from mirrorbits.scan.abort import Abort
from mirrorbits.scan.changing import ChangingPaths
from mirrorbits.scan.local import RepositoryScanner, hash_local_file
from mirrorbits.scan.walk import ALGORITHMS, LocalFile, fs_path, indexed, needs_hashing
from mirrorbits.store.client import RedisClient
from mirrorbits.store.files import read_files
from mirrorbits.store.repository import commit_repository_paths

__all__ = ["RepositoryWatcher", "inotify_available", "inspect_paths"]

log = Logger(namespace="mirrorbits.scan.watch")

#: Seconds between the first event of a burst and the look at its paths.
DEBOUNCE: Final = 0.05
#: Paths looked at (and committed) at once; more wait for the next batch, started at once.
BATCH_PATHS: Final = 500
#: More distinct paths waiting than this: a full scan is cheaper than one look each.
MAX_PENDING: Final = 20_000
#: Seconds before a batch that could not be committed (database, lock) is tried again.
RETRY_DELAY: Final = 1.0
#: Directories added to the watch in one reactor turn at start.
WATCHES_PER_TURN: Final = 1000
WATCH_MASK: Final = (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE
                     | IN_MODIFY)
_HEADER: Final = struct.Struct("=LLLL")


def inotify_available() -> bool:
    """Whether this system offers inotify (Linux with a usable libc)."""
    try:
        from twisted.python import _inotify

        _inotify.init  # noqa: B018  (loads libc's inotify functions)
    except (ImportError, OSError, AttributeError):
        return False
    return True


@frozen
class Inspection:
    """What a look at some paths found: regular files, paths gone (or no longer regular
    files) and directories to watch and look into."""

    files: tuple[LocalFile, ...] = ()
    removed: tuple[str, ...] = ()
    directories: tuple[str, ...] = ()


def inspect_paths(root: str, paths: Sequence[str], directories: Sequence[str]) -> Inspection:
    """``lstat`` each of *paths* and list each of *directories* (one level), as the walk
    would see them (runs in a thread). A path that cannot be read is left as it is."""
    files: list[LocalFile] = []
    removed: list[str] = []
    found_directories: list[str] = []
    looked: set[str] = set()

    def look(path: str, is_listed: bool) -> None:
        if path in looked:
            return  # a new file is both reported itself and listed with its new directory
        looked.add(path)
        try:
            info = os.lstat(fs_path(root, path))
        except (FileNotFoundError, NotADirectoryError):
            if not is_listed:
                removed.append(path)
            return
        except OSError:
            return
        if stat.S_ISREG(info.st_mode):
            files.append(LocalFile(path, info.st_size, info.st_mtime_ns))
        elif stat.S_ISDIR(info.st_mode):
            found_directories.append(path)
        elif not is_listed:
            removed.append(path)  # a link or a special file is not part of the repository

    for path in paths:
        look(path, False)
    for directory in directories:
        try:
            names = sorted(os.listdir(fs_path(root, directory)))
        except OSError:
            continue
        for raw in names:
            child = f"{directory}/{os.fsdecode(raw)}"
            if _is_utf8(child):
                look(child, True)
    return Inspection(tuple(files), tuple(removed), tuple(found_directories))


def _directories_below(root: bytes) -> list[bytes]:
    """Every directory below *root* (not itself); symbolic links are not followed."""
    found: list[bytes] = []
    for directory, _subdirectories, _files in os.walk(root):
        if directory != root:
            found.append(directory)
    return found


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Notifier(INotify):
    """Twisted's inotify descriptor, its events handed over as ``(directory, name, mask)``.

    Two of Twisted's reactions are replaced: a queue overflow (watch descriptor -1, which
    Twisted drops) calls *on_overflow*, and a watched subdirectory deleted no longer closes
    the whole descriptor (the kernel's ``IN_IGNORED`` just forgets its watch).
    """

    def __init__(self, reactor: IReactorFDSet,
                 on_event: Callable[[bytes, bytes, int], None],
                 on_overflow: Callable[[], None]) -> None:
        super().__init__(reactor)
        self._on_event = on_event
        self._on_overflow = on_overflow

    def _doRead(self, in_: bytes) -> None:
        self._buffer += in_
        while len(self._buffer) >= _HEADER.size:
            wd, mask, _cookie, size = _HEADER.unpack_from(self._buffer)
            name = self._buffer[_HEADER.size:_HEADER.size + size].rstrip(b"\0")
            self._buffer = self._buffer[_HEADER.size + size:]
            if mask & IN_Q_OVERFLOW:
                self._on_overflow()
                continue
            watch = self._watchpoints.get(wd)
            if watch is None:
                continue
            if mask & IN_IGNORED:
                self._watchpoints.pop(wd, None)
                if self._watchpaths.get(watch.path) == wd:
                    del self._watchpaths[watch.path]
                continue
            self._on_event(watch.path.path, name, mask)

    def forget_below(self, directory: bytes) -> None:
        """Stop watching *directory* and everything below it (it was moved away)."""
        prefix = directory + b"/"
        for path in [p for p in self._watchpaths if p.path == directory
                     or p.path.startswith(prefix)]:
            wd = self._watchpaths.pop(path)
            self._watchpoints.pop(wd, None)
            with contextlib.suppress(Exception):  # already gone with its directory
                self._inotify.remove(self._fd, wd)

    def add_directory(self, directory: bytes) -> bool:
        """Watch one directory (not its subdirectories); False when it cannot be watched."""
        try:
            self.watch(FilePath(directory), mask=WATCH_MASK)
        except Exception:
            return False
        return True


@define(eq=False)
class RepositoryWatcher(Service):
    """Publishes the repository's changes as inotify reports them (``WatchLocalFiles``).

    Runs beside the :class:`~mirrorbits.scan.local.RepositoryScanner`, which still makes the
    full scans (at start, periodically, and when the watch cannot be trusted).
    """

    _get_config: Callable[[], Config]
    _get_client: Callable[[], RedisClient]
    _reactor: IWatchReactor
    _scanner: RepositoryScanner
    _on_published: Callable[[Sequence[FileInfo]], None] = lambda infos: None  # changed files
    # Requests of this process wait for the paths marked here until they are published.
    _changing: ChangingPaths | None = None
    _notifier: _Notifier | None = field(default=None, init=False)
    _root: str = field(default="", init=False)
    _root_bytes: bytes = field(default=b"", init=False)
    _pending: dict[str, bool] = field(factory=dict, init=False)  # path -> is a directory
    _writing: set[str] = field(factory=set, init=False)  # modified, not yet closed
    _recheck: set[str] = field(factory=set, init=False)  # committed during a full scan
    _timer: IDelayedCall | None = field(default=None, init=False)
    _busy: bool = field(default=False, init=False)
    _abort: Abort = field(init=False)
    _failing: str = field(default="", init=False)

    name = "repository-watch"

    def __attrs_post_init__(self) -> None:
        self._abort = Abort(self._reactor)
        self._scanner.after_each_scan(self._scan_finished)

    @property
    def watching(self) -> bool:
        """Whether inotify watches the repository now."""
        return self._notifier is not None

    def startService(self) -> None:
        super().startService()
        self._abort = Abort(self._reactor)
        self._start_watching()
        if self._notifier is None:
            # The repository may not exist yet: try again once the first scan found it.
            self._scanner.when_indexed().addCallback(lambda _: self._start_watching())

    def stopService(self) -> None:
        super().stopService()
        self._abort.abort()
        self._stop_watching()

    def config_changed(self) -> None:
        """Follow ``WatchLocalFiles`` and ``Repository`` after a reload."""
        config = self._get_config()
        if not self.running:
            return
        if self._notifier is not None and (not config.watch_repository
                                           or config.repository != self._root):
            self._stop_watching()
        if self._notifier is None:
            self._start_watching()

    def _start_watching(self) -> None:
        config = self._get_config()
        if not self.running or self._notifier is not None or not config.watch_repository:
            return
        if not inotify_available():
            log.info("[source] inotify is not available: changes are seen by the periodic "
                     "scan only")
            return
        # Runs at once up to the listing: the root is watched (or not) when this returns.
        starting = Deferred.fromCoroutine(self._watch(config.repository))
        starting.addErrback(lambda failure: log.failure("[source] Cannot watch the repository",
                                                        failure))

    async def _watch(self, repository: str) -> None:
        """Watch the root, then (listed in a thread, added a thousand at a time) every
        directory below it; events are handled meanwhile."""
        root = os.fsencode(repository.rstrip("/") or "/")
        try:
            notifier = _Notifier(self._reactor, self._event, self._overflow)
        except Exception as err:
            log.warn("[source] Cannot watch the repository: {error}", error=err)
            return
        if not os.path.isdir(root) or not notifier.add_directory(root):
            notifier.loseConnection()
            log.debug("[source] Cannot watch the repository yet")
            return
        notifier.startReading()
        self._notifier, self._root, self._root_bytes = notifier, repository, root
        directories = await deferToThreadPool(self._reactor, self._reactor.getThreadPool(),
                                              _directories_below, root)
        failed = 0
        for chunk in range(0, len(directories), WATCHES_PER_TURN):
            if self._notifier is not notifier:
                return  # stopped meanwhile
            for directory in directories[chunk:chunk + WATCHES_PER_TURN]:
                failed += 0 if notifier.add_directory(directory) else 1
            await deferLater(self._reactor, 0)
        log.info("[source] Watching {count} directories of the repository for changes",
                 count=len(directories) + 1 - failed)
        if failed:
            log.warn("[source] {failed} directories cannot be watched (too many? see "
                     "fs.inotify.max_user_watches): their changes wait for the periodic scan",
                     failed=failed)

    def _stop_watching(self) -> None:
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.loseConnection()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._pending.clear()
        self._writing.clear()
        if self._changing is not None:
            self._changing.release_all()

    # Events: cheap, on the reactor; the work happens in batches.

    def _event(self, directory: bytes, name: bytes, mask: int) -> None:
        if mask & IN_DELETE_SELF:
            return  # its parent reported it
        full = directory + b"/" + name if name else directory
        path = self._relative(full)
        if path is None:
            return
        if mask & IN_ISDIR:
            if mask & IN_MOVED_FROM:
                # Its files are not reported one by one: only a full scan can tell.
                if self._notifier is not None:
                    self._notifier.forget_below(full)
                # Moved on purpose (a mount point cannot be): its files may all go.
                self._full_scan("a directory was moved away", remove_all=True)
            elif mask & (IN_CREATE | IN_MOVED_TO):
                if self._notifier is not None:
                    self._notifier.add_directory(full)
                self._queue(path, True)
            return
        if mask & IN_MODIFY and not mask & IN_CLOSE_WRITE:
            self._writing.add(path)  # published once closed, never half-written
            return
        if mask & IN_CREATE:
            return  # an empty new file: its IN_CLOSE_WRITE follows
        self._writing.discard(path)
        self._queue(path, False)

    def _relative(self, full: bytes) -> str | None:
        root = self._root_bytes
        if full == root:
            return None
        if not full.startswith(root.rstrip(b"/") + b"/"):
            return None
        path = os.fsdecode(full[len(root.rstrip(b"/")):])
        return path if _is_utf8(path) else None

    def _overflow(self) -> None:
        self._full_scan("the inotify queue overflowed")

    def _queue(self, path: str, is_directory: bool) -> None:
        self._pending[path] = self._pending.get(path, False) or is_directory
        if not is_directory and self._changing is not None:
            self._changing.mark(path)
        if len(self._pending) > MAX_PENDING:
            self._pending.clear()
            if self._changing is not None:  # the scan publishes them: nothing waits for it
                self._changing.release_all()
            self._full_scan(f"more than {MAX_PENDING} paths changed at once")
            return
        if self._timer is None and not self._busy:
            self._timer = self._reactor.callLater(DEBOUNCE, self._run_batch)

    def _full_scan(self, why: str, remove_all: bool = False) -> None:
        log.info("[source] Full scan: {why}", why=why)
        scanning = Deferred.fromCoroutine(self._scanner.refresh(allow_empty=False,
                                                                remove_all=remove_all))
        scanning.addErrback(lambda failure: log.warn(
            "[source] Repository scan failed: {error}", error=failure.value))

    def _scan_finished(self) -> None:
        """A full scan ended: what was committed meanwhile may have been overwritten by its
        older view, so it is looked at again."""
        if not self._recheck or self._notifier is None:
            return
        recheck, self._recheck = self._recheck, set()
        for path in recheck:
            self._queue(path, False)

    # Batches: look (thread), hash (thread), commit (one MULTI per part of the batch).

    def _run_batch(self) -> None:
        self._timer = None
        if self._busy or not self._pending or self._notifier is None:
            return
        if not self._scanner.indexed:
            self._timer = self._reactor.callLater(RETRY_DELAY, self._run_batch)
            return
        taken = list(self._pending.items())[:BATCH_PATHS]
        for path, _ in taken:
            del self._pending[path]
        self._busy = True
        marks = {} if self._changing is None else self._changing.taken(p for p, _ in taken)
        running = Deferred.fromCoroutine(self._publish(dict(taken), marks))
        running.addBoth(self._batch_done)

    def _batch_done(self, result: object) -> None:
        self._busy = False
        if self._pending and self._timer is None and self.running:
            delay = RETRY_DELAY if self._failing else 0
            self._timer = self._reactor.callLater(delay, self._run_batch)

    async def _publish(self, batch: dict[str, bool], marks: dict[str, int]) -> None:
        root = self._root
        paths = [p for p, is_dir in batch.items() if not is_dir and p not in self._writing]
        directories = [p for p, is_dir in batch.items() if is_dir]
        try:
            found: Inspection = await _in_thread(self._reactor, inspect_paths, root, paths,
                                                 directories)
            for directory in found.directories:  # new subdirectories: watch, then list them
                if self._notifier is not None:
                    self._notifier.add_directory(fs_path(root, directory))
                self._pending[directory] = True
            client = self._get_client()
            files = [f for f in found.files if f.path not in self._writing]
            infos = await self._index(client, root, files)
            scan_running = self._scanner.busy
            removed = 0
            if infos or found.removed:
                removed = await commit_repository_paths(client, self._reactor, self._abort,
                                                        infos, list(found.removed))
        except Exception as err:
            if self._abort.event.is_set():
                return
            message = str(err) or type(err).__name__
            if message != self._failing:
                log.warn("[source] Cannot publish repository changes, will retry: {error}",
                         error=message)
            self._failing = message
            for path, is_dir in batch.items():
                self._pending[path] = self._pending.get(path, False) or is_dir
            return
        if self._failing:
            log.info("[source] Publishing repository changes again")
        self._failing = ""
        if infos or removed:
            log.info("[source] Published {changed} changed and {removed} removed files",
                     changed=len(infos), removed=removed)
        if infos:
            self._on_published(infos)
        if self._changing is not None:  # the requests waiting for these paths go on
            await self._changing.release(
                marks, [info.path for info in infos] + list(found.removed))
        if scan_running or self._scanner.busy:
            committed = [info.path for info in infos] + list(found.removed)
            if self._scanner.busy:
                self._recheck.update(committed)
            else:  # it ended meanwhile, perhaps committing an older view after ours
                for path in committed:
                    self._queue(path, False)

    async def _index(self, client: RedisClient, root: str,
                     files: Sequence[LocalFile]) -> list[FileInfo]:
        enabled = tuple(name for name in ALGORITHMS if getattr(self._get_config().hashes, name))
        previous = await read_files(client, [f.path for f in files])
        infos: list[FileInfo] = []
        for local, old in zip(files, previous, strict=True):
            if old is not None and not needs_hashing(local, old, enabled, False):
                info = indexed(local, old.sha1, old.sha256, old.md5)
                if not _same_record(info, old):
                    infos.append(info)
                continue  # unchanged (closed without a change, or looked at again)
            digests = await hash_local_file(self._reactor, root, local, enabled, self._abort)
            infos.append(indexed(local, *(digests.get(name, "") for name in ALGORITHMS)))
        return infos


def _same_record(new: FileInfo, old: FileInfo) -> bool:
    return (new.size, new.mod_time_ns, new.sha1, new.sha256, new.md5) == (
        old.size, old.mod_time_ns, old.sha1, old.sha256, old.md5)


def _in_thread(reactor: IThreadReactor, function: Callable[..., Inspection],
               *args: object) -> Deferred[Inspection]:
    return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)
