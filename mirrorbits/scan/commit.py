"""Committing a mirror scan to Redis (spec §6.4, §3.4 ``SCANNING_<id>``, §13).

Differences from the reference, on purpose:

* bounded batches: at most :data:`BATCH` commands per ``MULTI`` (spec §20 item 22), while the
  10 s lock is renewed every 5 s; a reader may see a mirror's new files before its removed
  ones are dropped, never a ``MIRRORFILES_<id>`` entry whose ``FILEINFO_`` is gone;
* nothing but ``MIRRORFILESTMP_<id>`` is written before the listing is complete, so a failed
  scan leaves the mirror's known files untouched; a scan that lists **zero** files is logged
  as a warning and keeps the previous files (``MIRRORFILES_``, ``FILEMIRRORS_``,
  ``FILEINFO_``): the reference kept only ``MIRRORFILES_`` and dropped the rest (§20 item 10);
* ``lastSync`` (§20 item 24) is kept as the reference writes it: the time of the last
  *attempt*, written when a scan starts and again when it succeeds. The scheduler compares
  it with ``ScanInterval``, so a failing mirror is retried once per interval instead of every
  second; ``lastSuccessfulSync`` tells when the files were last refreshed.

With ``FixTimezoneOffsets`` off, ``tzoffset`` is written as 0 with the success mark; on, it is
detected and stored afterwards (§6.5, :mod:`mirrorbits.scan.tzoffset`), never first reset to 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from attrs import define, frozen
from twisted.internet.task import LoopingCall

from mirrorbits.encoding import format_go_time
from mirrorbits.logs import Logger
from mirrorbits.progress import Progress
from mirrorbits.scan.rsync import PRECISION_NS, ScanListing
from mirrorbits.scan.rsync_listing import ListedFile
from mirrorbits.scan.tzoffset import store_detected_offset
from mirrorbits.store import keys
from mirrorbits.store.bigsets import contained, fill, members, replace
from mirrorbits.store.commands import RedisClient, batches, transaction
from mirrorbits.store.errors import MirrorNotFound, ScanInProgress
from mirrorbits.store.events import (
    error_event,
    scan_completed_event,
    scan_started_event,
)

__all__ = [
    "BATCH",
    "ScanLock",
    "ScanResult",
    "acquire_scan_lock",
    "commit_scan",
    "mark_scan_started",
    "record_scan_failure",
    "scan_mirror",
]

log = Logger(namespace="mirrorbits.scan.commit")

#: Most commands in one MULTI/EXEC.
BATCH: Final = 1000
LOCK_TTL: Final = 10
LOCK_RENEW_EVERY: Final = 5.0
_FILES_PER_BATCH: Final = (BATCH - 1) // 3  # one SADD + three commands per file
_PATHS_PER_BATCH: Final = BATCH // 3


@frozen
class ScanResult:
    """What the CLI reports: files indexed, known locally, removed, TZ offset in ms."""

    files: int
    known: int
    removed: int
    tz_offset_ms: int = 0


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


async def acquire_scan_lock(client: RedisClient, mirror_id: int, clock: Any) -> ScanLock:
    """``SET SCANNING_<id> 1 NX EX 10``; raises :class:`ScanInProgress` when already held."""
    key = keys.scanning(mirror_id)
    taken = await client.set(key, "1", expire=LOCK_TTL, only_if_not_exists=True)
    if taken is None:
        raise ScanInProgress("scan already in progress")

    def renew() -> Any:
        return client.expire(key, LOCK_TTL).addErrback(
            lambda failure: log.warn("Cannot renew the scan lock of mirror {id}: {error}",
                                     id=mirror_id, error=failure.value))

    renewal = LoopingCall(renew)
    renewal.clock = clock
    renewal.start(LOCK_RENEW_EVERY, now=False)
    return ScanLock(client=client, mirror_id=mirror_id, renewal=renewal)


def _now(clock: Any) -> tuple[int, int]:
    """(Unix seconds, nanoseconds) of the clock."""
    seconds: float = clock.seconds()
    return int(seconds), int(seconds * 1_000_000) * 1000


async def mark_scan_started(client: RedisClient, mirror_id: int, protocol: int, clock: Any) -> None:
    """``lastSync = now``, publish, SCANSTARTED entry (spec §6.4 step 3)."""
    now_s, now_ns = _now(clock)
    await transaction(client, [("HSET", keys.mirror(mirror_id), "lastSync", str(now_s))])
    await client.publish(keys.CHANNEL_MIRROR_UPDATE, str(mirror_id))
    await client.rpush(keys.mirror_logs(mirror_id), scan_started_event(mirror_id, protocol, now_ns))


async def record_scan_failure(
    client: RedisClient, mirror_id: int, name: str, error: BaseException, clock: Any
) -> None:
    """Drop the scratch set, log ``[<name>] <err>`` and push an ERROR entry (step 5)."""
    _, now_ns = _now(clock)
    log.error("[{name}] {error}", name=name, error=str(error))
    await client.delete(keys.mirror_files_tmp(mirror_id))
    await client.rpush(keys.mirror_logs(mirror_id), error_event(mirror_id, str(error), now_ns))


def _file_commands(mirror_id: int, files: Sequence[ListedFile]) -> list[tuple[str, ...]]:
    tmp = keys.mirror_files_tmp(mirror_id)
    commands: list[tuple[str, ...]] = [("SADD", tmp, *(f.path for f in files))]
    member = str(mirror_id)
    for f in files:
        commands.append(("SADD", keys.file_mirrors(f.path), member))
        commands.append(("HMSET", keys.file_info(mirror_id, f.path),
                         "size", str(f.size), "modTime", format_go_time(f.mod_time_ns)))
        commands.append(("PUBLISH", keys.CHANNEL_MIRROR_FILE_UPDATE,
                         keys.mirror_file_update(mirror_id, f.path)))
    return commands


def _removal_commands(mirror_id: int, paths: Sequence[str]) -> list[tuple[str, ...]]:
    commands: list[tuple[str, ...]] = []
    for path in paths:
        commands.append(("SREM", keys.file_mirrors(path), str(mirror_id)))
        commands.append(("DEL", keys.file_info(mirror_id, path)))
        commands.append(("PUBLISH", keys.CHANNEL_MIRROR_FILE_UPDATE,
                         keys.mirror_file_update(mirror_id, path)))
    return commands


async def commit_scan(
    client: RedisClient,
    mirror_id: int,
    name: str,
    listing: ScanListing,
    protocol: int,
    clock: Any,
    *,
    fix_timezone_offsets: bool = False,
    progress: Progress | None = None,
) -> ScanResult:
    """Write a complete listing (steps 4, 6-12); the caller holds ``SCANNING_<id>``.

    With ``fix_timezone_offsets`` the mirror's timezone offset is detected (§6.5);
    ``progress`` counts the files written (phase ``indexing``).
    """
    files = list({f.path: f for f in listing.files}.values())
    tmp = keys.mirror_files_tmp(mirror_id)
    current = keys.mirror_files(mirror_id)
    await client.delete(tmp)
    log.info("[{name}] Indexing the files...", name=name)
    if progress is not None:
        progress.begin("indexing", len(files))
    for batch in batches(files, _FILES_PER_BATCH):
        await transaction(client, _file_commands(mirror_id, batch))
        if progress is not None:
            progress.advance(len(batch))
    removed: list[str] = []
    if files:
        listed = [f.path for f in files]
        removed = sorted(await members(client, current) - set(listed))
        await replace(client, current, tmp, keys.discarded(current))
        for paths in batches(removed, _PATHS_PER_BATCH):
            await transaction(client, _removal_commands(mirror_id, paths))
    else:
        log.warn("[{name}] The scan listed no files: the files of the previous scan are kept",
                 name=name)
        listed = sorted(await members(client, current))
    # HANDLEDFILES = FILES ∩ MIRRORFILES, built in small steps (not one SINTERSTORE).
    handled = await contained(client, keys.FILES, listed)
    handled_key = keys.handled_files(mirror_id)
    await fill(client, keys.handled_files_tmp(mirror_id), handled)
    await replace(client, handled_key, keys.handled_files_tmp(mirror_id),
                  keys.discarded(handled_key))
    known = len(handled)
    now_s, now_ns = _now(clock)
    precision = listing.precision_ns or PRECISION_NS
    success: list[tuple[str, ...]] = [
        ("HSET", keys.mirror(mirror_id), "lastSync", str(now_s)),
        ("HMSET", keys.mirror(mirror_id), "lastSuccessfulSync", str(now_s),
         "lastSuccessfulSyncProtocol", str(protocol),
         "lastSuccessfulSyncPrecision", str(precision)),
    ]
    if not fix_timezone_offsets:
        success.append(("HSET", keys.mirror(mirror_id), "tzoffset", "0"))
    await transaction(client, success)
    await client.publish(keys.CHANNEL_MIRROR_UPDATE, str(mirror_id))
    tz_offset_ms = 0
    if fix_timezone_offsets:
        tz_offset_ms = await store_detected_offset(client, mirror_id, name, precision)
    result = ScanResult(files=len(files), known=known, removed=len(removed),
                        tz_offset_ms=tz_offset_ms)
    log.info("[{name}] Indexed {files} files ({known} known), {removed} removed",
             name=name, files=result.files, known=result.known, removed=result.removed)
    await client.rpush(keys.mirror_logs(mirror_id), scan_completed_event(
        mirror_id, result.files, result.known, result.removed, result.tz_offset_ms, now_ns))
    return result


async def scan_mirror(
    client: RedisClient,
    clock: Any,
    mirror_id: int,
    protocol: int,
    list_files: Callable[[str], Awaitable[ScanListing]],
    *,
    fix_timezone_offsets: bool = False,
    progress: Progress | None = None,
) -> ScanResult:
    """The whole §6.4 flow around ``list_files(name)`` (e.g. :func:`rsync_list`).

    ``progress`` counts the files written to Redis.

    Raises :class:`MirrorNotFound`, :class:`ScanInProgress`, or the scanner's error (after
    recording it).
    """
    name = await client.hget(keys.MIRRORS, str(mirror_id))
    if name is None:
        raise MirrorNotFound("mirror not found")
    lock = await acquire_scan_lock(client, mirror_id, clock)
    try:
        await mark_scan_started(client, mirror_id, protocol, clock)
        try:
            listing = await list_files(name)
        except Exception as err:
            await _record_failure_safely(client, mirror_id, name, err, clock)
            raise
        try:
            return await commit_scan(client, mirror_id, name, listing, protocol, clock,
                                     fix_timezone_offsets=fix_timezone_offsets,
                                     progress=progress)
        except Exception as err:
            await _record_failure_safely(client, mirror_id, name, err, clock)
            raise
    finally:
        await lock.release()


async def _record_failure_safely(
    client: RedisClient, mirror_id: int, name: str, error: Exception, clock: Any
) -> None:
    """:func:`record_scan_failure`, whose own failure is logged (the scan's error wins)."""
    try:
        await record_scan_failure(client, mirror_id, name, error, clock)
    except Exception as failure:
        log.error("[{name}] Cannot record the scan failure: {error}", name=name, error=failure)
