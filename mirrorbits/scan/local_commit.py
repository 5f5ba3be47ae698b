"""The Redis side of the local repository scan (spec §5 steps 4-8, §3.4).

Differs from the reference on purpose (spec §20 items 11 and 22):

* the commit is made of bounded batches (at most :data:`BATCH` commands per ``MULTI``), so
  a huge repository never blocks Redis for long, while ``SOURCE_REPO_SYNC`` is renewed
  every 5 seconds;
* ``FILE_<path>`` hashes are written (and published) before ``FILES`` is swapped with one
  ``RENAME``, and removed files' hashes are deleted only after the swap: ``FILES`` never
  lists a path whose hash is gone;
* an empty repository empties ``FILES`` (``DEL``) instead of leaving it stale.

Once the lock is taken the commit runs to its end: an abort is only honoured before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, Final, TypeVar

from attrs import Factory, define
from twisted.internet.defer import CancelledError, Deferred, DeferredList, FirstError
from twisted.internet.task import LoopingCall, deferLater

from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo
from mirrorbits.progress import Progress
from mirrorbits.scan.walk import ScanAborted
from mirrorbits.store import keys
from mirrorbits.store.errors import ScanInProgress
from mirrorbits.store.records import file_info_from_hash, file_info_to_fields

__all__ = ["BATCH", "Abort", "chunks", "commit_files", "read_previous"]

log = Logger(namespace="mirrorbits.scan.local")

#: Most commands sent in one MULTI/EXEC (or one read pipeline).
BATCH: Final = 1000
LOCK_TTL: Final = 10
LOCK_RENEW_EVERY: Final = 5.0
LOCK_TRIES: Final = 10
LOCK_RETRY_DELAY: Final = 1.0
FILE_FIELDS: Final = ("size", "modTime", "sha1", "sha256", "md5")

T = TypeVar("T")


@define(eq=False)
class Abort:
    """Stops a scan cleanly: checked between steps, wakes sleeps, seen by the threads."""

    clock: Any
    event: threading.Event = Factory(threading.Event)
    _sleeps: set[Deferred[None]] = Factory(set)

    def abort(self) -> None:
        self.event.set()
        for sleep in list(self._sleeps):
            sleep.cancel()

    def check(self) -> None:
        if self.event.is_set():
            raise ScanAborted()

    async def sleep(self, seconds: float) -> None:
        self.check()
        sleep: Deferred[None] = deferLater(self.clock, seconds)
        self._sleeps.add(sleep)
        try:
            await sleep
        except CancelledError:
            raise ScanAborted() from None
        finally:
            self._sleeps.discard(sleep)


async def read_previous(client: Any, paths: Sequence[str]) -> list[FileInfo | None]:
    """``HMGET size modTime sha1 sha256 md5`` of each path, in one pipeline."""
    if not paths:
        return []
    pipe = await client.pipeline()
    for path in paths:
        pipe.hmget(keys.file(path), list(FILE_FIELDS))
    try:
        replies: list[list[str | None]] = await pipe.execute_pipeline()
    except FirstError as err:
        err.subFailure.raiseException()
    return [
        None if all(value is None for value in values)
        else file_info_from_hash(path, dict(zip(FILE_FIELDS, values, strict=True)))
        for path, values in zip(paths, replies, strict=True)
    ]


async def commit_files(
    client: Any,
    reactor: Any,
    abort: Abort,
    infos: Sequence[FileInfo],
    progress: Progress | None = None,
) -> int:
    """Write the scan under ``SOURCE_REPO_SYNC``; returns how many paths were removed.

    *progress* counts the files written (phase ``indexing``).
    """
    await _acquire_lock(client, abort)
    renewal = LoopingCall(_renew_lock, client)
    renewal.clock = reactor
    renewal.start(LOCK_RENEW_EVERY, now=False)
    try:
        await client.delete(keys.FILES_TMP)
        for batch in chunks(infos, BATCH):
            await client.sadd(keys.FILES_TMP, [info.path for info in batch])
        removed = sorted(await client.sdiff([keys.FILES, keys.FILES_TMP]))
        if progress is not None:
            progress.begin("indexing", len(infos))
        for batch in chunks(infos, BATCH // 2):
            await _transaction(client, _file_writes(batch))
            if progress is not None:
                progress.advance(len(batch))
        if infos:
            await client.rename(keys.FILES_TMP, keys.FILES)
        else:
            await client.delete(keys.FILES)
        for paths in chunks(removed, BATCH // 2):
            await _transaction(client, _file_deletions(paths))
        return len(removed)
    finally:
        renewal.stop()
        try:
            await client.delete(keys.SOURCE_REPO_SYNC)
        except Exception as err:
            log.warn("[source] Cannot release the lock: {error}", error=err)


async def _acquire_lock(client: Any, abort: Abort) -> None:
    """``SET SOURCE_REPO_SYNC 1 NX EX 10``, tried :data:`LOCK_TRIES` times a second apart."""
    for attempt in range(LOCK_TRIES):
        if attempt:
            await abort.sleep(LOCK_RETRY_DELAY)
        abort.check()
        taken = await client.set(keys.SOURCE_REPO_SYNC, "1", expire=LOCK_TTL,
                                 only_if_not_exists=True)
        if taken is not None:
            return
    raise ScanInProgress("scan already in progress")


def _renew_lock(client: Any) -> Deferred[None]:
    """``EXPIRE SOURCE_REPO_SYNC 10``; a failure is logged (it must not stop the loop)."""
    renewed: Deferred[None] = client.expire(keys.SOURCE_REPO_SYNC, LOCK_TTL)
    return renewed.addErrback(
        lambda failure: log.warn("[source] Cannot renew the lock: {error}", error=failure.value)
    )


Command = tuple[str, tuple[Any, ...]]


def _file_writes(infos: Sequence[FileInfo]) -> Iterator[Command]:
    for info in infos:
        yield "hmset", (keys.file(info.path), dict(file_info_to_fields(info)))
        yield "publish", (keys.CHANNEL_FILE_UPDATE, info.path)


def _file_deletions(paths: Sequence[str]) -> Iterator[Command]:
    for path in paths:
        yield "delete", (keys.file(path),)
        yield "publish", (keys.CHANNEL_FILE_UPDATE, path)


async def _transaction(client: Any, commands: Iterator[Command]) -> None:
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


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
