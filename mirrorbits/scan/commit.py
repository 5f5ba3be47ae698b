"""Running a mirror scan (spec §6.4): lock, list, commit, detect the timezone offset, log.

The Redis side of each step is an operation of :mod:`mirrorbits.store.scans`. Differences
from the reference, on purpose:

* bounded batches: at most :data:`BATCH` commands per ``MULTI`` (spec §20 item 22), while the
  10 s lock is renewed every 5 s; a reader may see a mirror's new files before its removed
  ones are dropped, never a ``MIRRORFILES_<id>`` entry whose ``FILEINFO_`` is gone;
* nothing but ``MIRRORFILESTMP_<id>`` is written before the listing is complete, so a failed
  scan leaves the mirror's known files untouched; a scan that lists **zero** files is logged
  as a warning and keeps the previous files (``MIRRORFILES_``, ``FILEMIRRORS_``,
  ``FILEINFO_``): the reference kept only ``MIRRORFILES_`` and dropped the rest (§20 item 10);
* a listed name with control characters is kept only when the local repository holds the same
  path; the others are dropped, counted and logged (a mirror cannot plant escape sequences or
  line breaks in the database for names nobody serves);
* ``lastSync`` (§20 item 24) is kept as the reference writes it: the time of the last
  *attempt*, written when a scan starts and again when it succeeds. The scheduler compares
  it with ``ScanInterval`` and, for a mirror whose monitor scan failed, with its own backoff
  in memory (:mod:`mirrorbits.scan.retry`: 1 min, 2, 4...); ``lastSuccessfulSync`` tells when
  the files were last refreshed.

With ``FixTimezoneOffsets`` off, ``tzoffset`` is written as 0 with the success mark; on, it is
detected and stored afterwards (§6.5, :mod:`mirrorbits.scan.tzoffset`), never first reset to 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from mirrorbits.logs import Logger
from mirrorbits.progress import Progress
from mirrorbits.scan.bounds import has_control_characters
from mirrorbits.scan.rsync import PRECISION_NS, ScanListing
from mirrorbits.scan.rsync_listing import ListedFile
from mirrorbits.scan.tzoffset import store_detected_offset
from mirrorbits.store import scans
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import MirrorNotFound
from mirrorbits.store.files import indexed_paths
from mirrorbits.store.mirrors import mirror_name
from mirrorbits.store.scans import BATCH

__all__ = [
    "BATCH",
    "ScanResult",
    "commit_scan",
    "scan_mirror",
]

log = Logger(namespace="mirrorbits.scan.commit")


@frozen
class ScanResult:
    """What the CLI reports: files indexed, known locally, removed, TZ offset in ms."""

    files: int
    known: int
    removed: int
    tz_offset_ms: int = 0


def _now(clock: IReactorTime) -> tuple[int, int]:
    """(Unix seconds, nanoseconds) of the clock."""
    seconds: float = clock.seconds()
    return int(seconds), int(seconds * 1_000_000) * 1000


async def commit_scan(
    client: RedisClient,
    mirror_id: int,
    name: str,
    listing: ScanListing,
    protocol: int,
    clock: IReactorTime,
    *,
    fix_timezone_offsets: bool = False,
    progress: Progress | None = None,
) -> ScanResult:
    """Write a complete listing (steps 4, 6-12); the caller holds ``SCANNING_<id>``.

    With ``fix_timezone_offsets`` the mirror's timezone offset is detected (§6.5);
    ``progress`` counts the files written (phase ``indexing``).
    """
    files = await _vouched(client, name, list({f.path: f for f in listing.files}.values()))
    log.info("[{name}] Indexing the files...", name=name)
    if not files:
        log.warn("[{name}] The scan listed no files: the files of the previous scan are kept",
                 name=name)
    committed = await scans.commit_listing(client, mirror_id, files, progress)
    now_s, now_ns = _now(clock)
    precision = listing.precision_ns or PRECISION_NS
    await scans.mark_scan_succeeded(client, mirror_id, protocol, precision, now_s,
                                    reset_tz_offset=not fix_timezone_offsets)
    tz_offset_ms = 0
    if fix_timezone_offsets:
        tz_offset_ms = await store_detected_offset(client, mirror_id, name, precision)
    result = ScanResult(files=len(files), known=committed.known, removed=committed.removed,
                        tz_offset_ms=tz_offset_ms)
    log.info("[{name}] Indexed {files} files ({known} known), {removed} removed",
             name=name, files=result.files, known=result.known, removed=result.removed)
    await scans.log_scan_completed(client, mirror_id, result.files, result.known,
                                   result.removed, result.tz_offset_ms, now_ns)
    return result


async def _vouched(client: RedisClient, name: str, files: list[ListedFile]) -> list[ListedFile]:
    """``files`` without the names with control characters that the repository does not hold."""
    odd = [f.path for f in files if has_control_characters(f.path)]
    if not odd:
        return files
    dropped = set(odd) - set(await indexed_paths(client, odd))
    if dropped:
        log.warn("[{name}] {count} names with control characters skipped (not in the local "
                 "repository), such as {example!r}", name=name, count=len(dropped),
                 example=min(dropped))
    return [f for f in files if f.path not in dropped]


async def scan_mirror(
    client: RedisClient,
    clock: IReactorTime,
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
    name = await mirror_name(client, mirror_id)
    if name is None:
        raise MirrorNotFound("mirror not found")
    lock = await scans.acquire_scan_lock(client, mirror_id, clock)
    try:
        await scans.mark_scan_started(client, mirror_id, protocol, *_now(clock))
        try:
            listing = await list_files(name)
        except Exception as err:
            await _record_failure(client, mirror_id, name, err, clock)
            raise
        try:
            return await commit_scan(client, mirror_id, name, listing, protocol, clock,
                                     fix_timezone_offsets=fix_timezone_offsets,
                                     progress=progress)
        except Exception as err:
            await _record_failure(client, mirror_id, name, err, clock)
            raise
    finally:
        await lock.release()


async def _record_failure(
    client: RedisClient, mirror_id: int, name: str, error: Exception, clock: IReactorTime
) -> None:
    """Log ``[<name>] <err>`` and record it (step 5); a failure to record it is logged (the
    scan's error wins)."""
    _, now_ns = _now(clock)
    log.error("[{name}] {error}", name=name, error=str(error))
    try:
        await scans.record_scan_failure(client, mirror_id, str(error), now_ns)
    except Exception as failure:
        log.error("[{name}] Cannot record the scan failure: {error}", name=name, error=failure)
