"""Writing a mirror scan (spec §6.4, §6.5, §6.6, §3.4 ``SCANNING_<id>``, §13).

The steps of a scan, each one operation; :mod:`mirrorbits.scan.commit` runs them in order:

1. :func:`acquire_scan_lock` (``SCANNING_<id>``, renewed every 5 s until released);
2. :func:`mark_scan_started` (``lastSync``, published, ``SCANSTARTED`` entry), or later
   :func:`record_scan_failure`;
3. :func:`commit_listing`: the listed files in batches of at most :data:`BATCH` commands per
   ``MULTI`` (:func:`commit_scan_batch`), then ``MIRRORFILES_<id>`` replaced, the files no
   longer listed forgotten (:func:`forget_mirror_files`) and ``HANDLEDFILES_<id>`` rebuilt.
   Nothing but ``MIRRORFILESTMP_<id>`` is written before the listing is complete; a reader
   may see a mirror's new files before its removed ones are dropped, never a
   ``MIRRORFILES_<id>`` entry whose ``FILEINFO_`` is gone. An empty listing keeps the
   previous files;
4. :func:`mark_scan_succeeded`, then :func:`store_tz_offset` if the offset is detected;
5. :func:`log_scan_completed` (``SCANCOMPLETED`` entry).

:func:`record_trace` stores the time read from a mirror's trace file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from attrs import define, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from mirrorbits.encoding import format_go_time
from mirrorbits.logs import Logger
from mirrorbits.progress import Progress
from mirrorbits.store import keys
from mirrorbits.store.bigsets import contained, fill, members, replace
from mirrorbits.store.client import RedisClient
from mirrorbits.store.commands import batches, transaction
from mirrorbits.store.errors import ScanInProgress
from mirrorbits.store.eventlog import append_event
from mirrorbits.store.events import error_event, scan_completed_event, scan_started_event
from mirrorbits.store.pubsub import publish
from mirrorbits.store.records import FileField, MirrorField

__all__ = [
    "BATCH",
    "CommittedListing",
    "ListedEntry",
    "ScanLock",
    "acquire_scan_lock",
    "commit_listing",
    "commit_scan_batch",
    "forget_mirror_files",
    "log_scan_completed",
    "mark_scan_started",
    "mark_scan_succeeded",
    "mirror_file_removals",
    "record_scan_failure",
    "record_trace",
    "store_tz_offset",
]

log = Logger(namespace="mirrorbits.scan.commit")

#: Most commands in one MULTI/EXEC.
BATCH: Final = 1000
LOCK_TTL: Final = 10
LOCK_RENEW_EVERY: Final = 5.0
_FILES_PER_BATCH: Final = (BATCH - 1) // 3  # one SADD + three commands per file
_PATHS_PER_BATCH: Final = BATCH // 3


class ListedEntry(Protocol):
    """A file found on a mirror: path (starting with ``/``), size, mtime in ns (UTC)."""

    @property
    def path(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def mod_time_ns(self) -> int: ...


@frozen
class CommittedListing:
    """What :func:`commit_listing` found: paths also in the local repository (``known``),
    paths of the previous scan no longer listed (``removed``)."""

    known: int
    removed: int


@define(eq=False)
class ScanLock:
    """A held ``SCANNING_<id>``, renewed every 5 s until :meth:`release`."""

    client: RedisClient
    mirror_id: int
    renewal: LoopingCall

    async def release(self) -> None:
        if self.renewal.running:
            self.renewal.stop()
        try:
            await self.client.delete(keys.scanning(self.mirror_id))
        except Exception as err:
            log.warn("Cannot release the scan lock of mirror {id}: {error}",
                     id=self.mirror_id, error=err)


async def acquire_scan_lock(client: RedisClient, mirror_id: int, clock: IReactorTime) -> ScanLock:
    """``SET SCANNING_<id> 1 NX EX 10``; raises :class:`ScanInProgress` when already held."""
    key = keys.scanning(mirror_id)
    taken = await client.set(key, "1", expire=LOCK_TTL, only_if_not_exists=True)
    if taken is None:
        raise ScanInProgress("scan already in progress")

    def renew() -> Deferred[int | None]:
        return client.expire(key, LOCK_TTL).addErrback(
            lambda failure: log.warn("Cannot renew the scan lock of mirror {id}: {error}",
                                     id=mirror_id, error=failure.value))

    renewal = LoopingCall(renew)
    renewal.clock = clock
    renewal.start(LOCK_RENEW_EVERY, now=False)
    return ScanLock(client=client, mirror_id=mirror_id, renewal=renewal)


async def mark_scan_started(
    client: RedisClient, mirror_id: int, protocol: int, now_s: int, now_ns: int
) -> None:
    """``lastSync = now``, publish, SCANSTARTED entry (spec §6.4 step 3)."""
    await transaction(client, [("HSET", keys.mirror(mirror_id), MirrorField.LAST_SYNC,
                                str(now_s))])
    await publish(client, keys.CHANNEL_MIRROR_UPDATE, str(mirror_id))
    await append_event(client, mirror_id, scan_started_event(mirror_id, protocol, now_ns))


async def record_scan_failure(client: RedisClient, mirror_id: int, error: str, now_ns: int) -> None:
    """Drop the scratch set and push an ERROR entry (step 5)."""
    await client.delete(keys.mirror_files_tmp(mirror_id))
    await append_event(client, mirror_id, error_event(mirror_id, error, now_ns))


def _file_commands(mirror_id: int, files: Sequence[ListedEntry]) -> list[tuple[str, ...]]:
    tmp = keys.mirror_files_tmp(mirror_id)
    commands: list[tuple[str, ...]] = [("SADD", tmp, *(f.path for f in files))]
    member = str(mirror_id)
    for f in files:
        commands.append(("SADD", keys.file_mirrors(f.path), member))
        commands.append(("HMSET", keys.file_info(mirror_id, f.path),
                         FileField.SIZE, str(f.size),
                         FileField.MOD_TIME, format_go_time(f.mod_time_ns)))
        commands.append(("PUBLISH", keys.CHANNEL_MIRROR_FILE_UPDATE,
                         keys.mirror_file_update(mirror_id, f.path)))
    return commands


def mirror_file_removals(mirror_id: int, paths: Sequence[str]) -> list[tuple[str, ...]]:
    """The commands that forget ``paths`` on a mirror (its ``FILEMIRRORS_`` membership and
    its ``FILEINFO_``), each published."""
    commands: list[tuple[str, ...]] = []
    member = str(mirror_id)
    for path in map(str, paths):
        commands.append(("SREM", keys.file_mirrors(path), member))
        commands.append(("DEL", keys.file_info(mirror_id, path)))
        commands.append(("PUBLISH", keys.CHANNEL_MIRROR_FILE_UPDATE,
                         keys.mirror_file_update(mirror_id, path)))
    return commands


async def commit_scan_batch(
    client: RedisClient, mirror_id: int, files: Sequence[ListedEntry]
) -> None:
    """One MULTI/EXEC: ``files`` added to ``MIRRORFILESTMP_<id>``, their ``FILEMIRRORS_`` and
    ``FILEINFO_`` written and published. At most :data:`BATCH` commands: see
    :func:`commit_listing`."""
    await transaction(client, _file_commands(mirror_id, files))


async def forget_mirror_files(client: RedisClient, mirror_id: int, paths: Sequence[str]) -> None:
    """One MULTI/EXEC of :func:`mirror_file_removals` (at most ``BATCH // 3`` paths)."""
    await transaction(client, mirror_file_removals(mirror_id, paths))


async def commit_listing(
    client: RedisClient,
    mirror_id: int,
    files: Sequence[ListedEntry],
    progress: Progress | None = None,
) -> CommittedListing:
    """Write a complete listing (spec §6.4 steps 4, 6-10; paths unique); the caller holds
    ``SCANNING_<id>``. ``progress`` counts the files written (phase ``indexing``)."""
    tmp = keys.mirror_files_tmp(mirror_id)
    current = keys.mirror_files(mirror_id)
    await client.delete(tmp)
    if progress is not None:
        progress.begin("indexing", len(files))
    for batch in batches(files, _FILES_PER_BATCH):
        await commit_scan_batch(client, mirror_id, batch)
        if progress is not None:
            progress.advance(len(batch))
    removed: list[str] = []
    if files:
        listed = [f.path for f in files]
        removed = sorted(await members(client, current) - set(listed))
        await replace(client, current, tmp, keys.discarded(current))
        for paths in batches(removed, _PATHS_PER_BATCH):
            await forget_mirror_files(client, mirror_id, paths)
    else:
        listed = sorted(await members(client, current))
    known = await _rebuild_handled_files(client, mirror_id, listed)
    return CommittedListing(known=known, removed=len(removed))


async def _rebuild_handled_files(client: RedisClient, mirror_id: int, listed: list[str]) -> int:
    """``HANDLEDFILES = FILES ∩ MIRRORFILES``, built in small steps (not one SINTERSTORE);
    its size."""
    handled = await contained(client, keys.FILES, listed)
    handled_key = keys.handled_files(mirror_id)
    await fill(client, keys.handled_files_tmp(mirror_id), handled)
    await replace(client, handled_key, keys.handled_files_tmp(mirror_id),
                  keys.discarded(handled_key))
    return len(handled)


async def mark_scan_succeeded(
    client: RedisClient,
    mirror_id: int,
    protocol: int,
    precision_ns: int,
    now_s: int,
    *,
    reset_tz_offset: bool,
) -> None:
    """``lastSync``, ``lastSuccessfulSync`` (with protocol and precision) and, with
    ``reset_tz_offset``, ``tzoffset = 0`` in one MULTI; then published (step 11)."""
    key = keys.mirror(mirror_id)
    success: list[tuple[str, ...]] = [
        ("HSET", key, MirrorField.LAST_SYNC, str(now_s)),
        ("HMSET", key, MirrorField.LAST_SUCCESSFUL_SYNC, str(now_s),
         MirrorField.LAST_SUCCESSFUL_SYNC_PROTOCOL, str(protocol),
         MirrorField.LAST_SUCCESSFUL_SYNC_PRECISION, str(precision_ns)),
    ]
    if reset_tz_offset:
        success.append(("HSET", key, MirrorField.TZ_OFFSET, "0"))
    await transaction(client, success)
    await publish(client, keys.CHANNEL_MIRROR_UPDATE, str(mirror_id))


async def log_scan_completed(
    client: RedisClient,
    mirror_id: int,
    files: int,
    known: int,
    removed: int,
    tz_offset_ms: int,
    now_ns: int,
) -> None:
    """The SCANCOMPLETED entry of the mirror's event log (step 12)."""
    await append_event(client, mirror_id, scan_completed_event(
        mirror_id, files, known, removed, tz_offset_ms, now_ns))


async def store_tz_offset(client: RedisClient, mirror_id: int, offset_ms: int) -> None:
    """``tzoffset`` (ms) of a mirror, published (spec §6.5)."""
    await client.execute_command("HMSET", keys.mirror(mirror_id), MirrorField.TZ_OFFSET,
                                 str(offset_ms))
    await publish(client, keys.CHANNEL_MIRROR_UPDATE, str(mirror_id))


async def record_trace(client: RedisClient, mirror_id: int, timestamp: int) -> None:
    """``lastModTime``: the time read from the mirror's trace file, published (§6.6)."""
    await client.hset(keys.mirror(mirror_id), MirrorField.LAST_MOD_TIME, str(timestamp))
    await publish(client, keys.CHANNEL_MIRROR_UPDATE, str(mirror_id))
