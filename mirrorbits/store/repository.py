"""Committing a local repository scan (spec §5 steps 4-8, §3.4 ``SOURCE_REPO_SYNC``).

Differs from the reference on purpose (spec §20 items 11 and 22):

* the commit is made of bounded batches (at most :data:`BATCH` commands per ``MULTI``), so
  a huge repository never blocks Redis for long, while ``SOURCE_REPO_SYNC`` is renewed
  every 5 seconds;
* ``FILE_<path>`` hashes are written (and published) before ``FILES`` is swapped with one
  ``RENAME``, and removed files' hashes are deleted only after the swap: ``FILES`` never
  lists a path whose hash is gone;
* an empty repository empties ``FILES`` (``DEL``) instead of leaving it stale;
* the daemon's own scans may keep the paths they would remove (*keep*, see
  :mod:`mirrorbits.scan.removals`): they stay in ``FILES`` with their ``FILE_<path>``.

Once the lock is taken the commit runs to its end: a stop is only honoured before.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

from attrs import frozen
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo
from mirrorbits.progress import Progress
from mirrorbits.store import keys
from mirrorbits.store.bigsets import contained
from mirrorbits.store.client import RedisClient, Value
from mirrorbits.store.commands import batches
from mirrorbits.store.errors import ScanInProgress
from mirrorbits.store.records import file_info_to_fields

__all__ = [
    "BATCH",
    "Interruptible",
    "KeepPaths",
    "RepositoryCommit",
    "commit_repository_paths",
    "commit_repository_scan",
    "indexed_file_count",
]

log = Logger(namespace="mirrorbits.scan.local")

#: Most commands sent in one MULTI/EXEC (or one read pipeline).
BATCH: Final = 1000
LOCK_TTL: Final = 10
LOCK_RENEW_EVERY: Final = 5.0
LOCK_TRIES: Final = 10
LOCK_RETRY_DELAY: Final = 1.0


class Interruptible(Protocol):
    """The scan waiting for the lock: :meth:`check` raises once it must stop, :meth:`sleep`
    waits (and raises the same way when stopped meanwhile)."""

    def check(self) -> None: ...

    async def sleep(self, seconds: float) -> None: ...


@frozen
class RepositoryCommit:
    """Paths a commit removed from ``FILES``, and those it kept though the scan lacks them."""

    removed: int
    kept: int = 0


#: Which of the paths a scan lacks (of so many indexed) must stay indexed.
KeepPaths = Callable[[Sequence[str], int], Collection[str]]


async def indexed_file_count(client: RedisClient) -> int:
    """How many files of the repository are indexed (``SCARD FILES``)."""
    return int(await client.scard(keys.FILES))


async def commit_repository_scan(
    client: RedisClient,
    clock: IReactorTime,
    scan: Interruptible,
    infos: Sequence[FileInfo],
    progress: Progress | None = None,
    keep: KeepPaths | None = None,
) -> RepositoryCommit:
    """Write the scan under ``SOURCE_REPO_SYNC``; says how many paths were removed.

    Raises :class:`ScanInProgress` when another node holds the lock for 10 seconds.
    *progress* counts the files written (phase ``indexing``). The paths *infos* lacks that
    ``keep(lacking, indexed)`` returns stay in ``FILES``, untouched (``kept``).
    """
    await _acquire_lock(client, scan)
    renewal = LoopingCall(_renew_lock, client)
    renewal.clock = clock
    renewal.start(LOCK_RENEW_EVERY, now=False)
    try:
        await client.delete(keys.FILES_TMP)
        for batch in batches(infos, BATCH):
            await client.sadd(keys.FILES_TMP, [info.path for info in batch])
        removed = sorted(await client.sdiff([keys.FILES, keys.FILES_TMP]))
        kept: list[str] = []
        if removed and keep is not None:
            held = set(keep(removed, await indexed_file_count(client)))
            kept = [path for path in removed if path in held]
            removed = [path for path in removed if path not in held]
            for paths in batches(kept, BATCH):
                await client.sadd(keys.FILES_TMP, paths)
        if progress is not None:
            progress.begin("indexing", len(infos))
        for batch in batches(infos, BATCH // 2):
            await _transaction(client, _file_writes(batch))
            if progress is not None:
                progress.advance(len(batch))
        if infos or kept:
            await client.rename(keys.FILES_TMP, keys.FILES)
        else:
            await client.delete(keys.FILES)
        for paths in batches(removed, BATCH // 2):
            await _transaction(client, _file_deletions(paths))
        return RepositoryCommit(removed=len(removed), kept=len(kept))
    finally:
        renewal.stop()
        try:
            await client.delete(keys.SOURCE_REPO_SYNC)
        except Exception as err:
            log.warn("[source] Cannot release the lock: {error}", error=err)


async def commit_repository_paths(
    client: RedisClient,
    clock: IReactorTime,
    scan: Interruptible,
    changed: Sequence[FileInfo],
    removed: Sequence[str],
) -> int:
    """Update only the given paths under ``SOURCE_REPO_SYNC`` (the repository watcher).

    Each batch is one ``MULTI``: a changed file's ``FILE_<path>`` is written and added to
    ``FILES``, a removed path leaves ``FILES`` and loses its hash, and every path is published
    on ``_mirrorbits_file_update`` (the caches then compare the mirrors' copies again).
    *removed* paths that ``FILES`` does not list (a temporary file renamed away) are left
    alone; returns how many were removed. Raises :class:`ScanInProgress` when another node
    holds the lock for 10 seconds.
    """
    await _acquire_lock(client, scan)
    renewal = LoopingCall(_renew_lock, client)
    renewal.clock = clock
    renewal.start(LOCK_RENEW_EVERY, now=False)
    try:
        for batch in batches(changed, BATCH // 3):
            await _transaction(client, _file_additions(batch))
        indexed = await contained(client, keys.FILES, removed) if removed else []
        for paths in batches(indexed, BATCH // 3):
            await _transaction(client, _path_removals(paths))
        return len(indexed)
    finally:
        renewal.stop()
        try:
            await client.delete(keys.SOURCE_REPO_SYNC)
        except Exception as err:
            log.warn("[source] Cannot release the lock: {error}", error=err)


async def _acquire_lock(client: RedisClient, scan: Interruptible) -> None:
    """``SET SOURCE_REPO_SYNC 1 NX EX 10``, tried :data:`LOCK_TRIES` times a second apart."""
    for attempt in range(LOCK_TRIES):
        if attempt:
            await scan.sleep(LOCK_RETRY_DELAY)
        scan.check()
        taken = await client.set(keys.SOURCE_REPO_SYNC, "1", expire=LOCK_TTL,
                                 only_if_not_exists=True)
        if taken is not None:
            return
    raise ScanInProgress("scan already in progress")


def _renew_lock(client: RedisClient) -> Deferred[int | None]:
    """``EXPIRE SOURCE_REPO_SYNC 10``; a failure is logged (it must not stop the loop)."""
    return client.expire(keys.SOURCE_REPO_SYNC, LOCK_TTL).addErrback(
        lambda failure: log.warn("[source] Cannot renew the lock: {error}", error=failure.value)
    )


Command = tuple[str, tuple[Value | Mapping[str, str], ...]]  # a client method, its arguments


def _file_writes(infos: Sequence[FileInfo]) -> Iterator[Command]:
    for info in infos:
        yield "hmset", (keys.file(info.path), dict(file_info_to_fields(info)))
        yield "publish", (keys.CHANNEL_FILE_UPDATE, info.path)


def _file_deletions(paths: Sequence[str]) -> Iterator[Command]:
    for path in paths:
        yield "delete", (keys.file(path),)
        yield "publish", (keys.CHANNEL_FILE_UPDATE, path)


def _file_additions(infos: Sequence[FileInfo]) -> Iterator[Command]:
    for info in infos:
        yield "hmset", (keys.file(info.path), dict(file_info_to_fields(info)))
        yield "sadd", (keys.FILES, info.path)
        yield "publish", (keys.CHANNEL_FILE_UPDATE, info.path)


def _path_removals(paths: Sequence[str]) -> Iterator[Command]:
    for path in paths:
        yield "srem", (keys.FILES, path)
        yield "delete", (keys.file(path),)
        yield "publish", (keys.CHANNEL_FILE_UPDATE, path)


async def _transaction(client: RedisClient, commands: Iterator[Command]) -> None:
    """Run *commands* in one MULTI/EXEC; raise the first error any of them got."""
    transaction = await client.multi()
    queued: list[Deferred[Any]] = []
    try:
        for name, args in commands:
            queued.append(getattr(transaction, name)(*args))
    except Exception:
        await transaction.discard()
        raise
    try:
        replies = await transaction.commit()
    finally:
        queuing = await DeferredList(queued, consumeErrors=True)
    for ok, result in queuing:
        if not ok:
            result.raiseException()
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
