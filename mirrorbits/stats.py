"""Download statistics: counting from the request path, flushing to Redis, reading back.

Counting (spec §11.1) is O(1) and does no I/O: :meth:`StatsService.count_download`
adds to in-memory counters per UTC day, and a ``LoopingCall`` on the injected clock
writes them every 500 ms (and at stop, fix of §20 item 17) in one script per batch
(:mod:`mirrorbits.store.statsflush`).

No counted download is lost or counted twice, whatever Redis does:

* Each batch gets an id when it is first sent and keeps it (and its content) until it is
  known written; the script writes a batch all or nothing, and once only per id. A batch
  Redis refused (``OOM``, ``READONLY``...) or whose reply was lost is sent again, as is,
  while new downloads gather in the next one.
* A written batch is kept until a replica holds it (``WAIT 1`` after the writes, when the
  master has had a replica within the last minute). When the writes move to a new master
  (a new link: failover, reconnection), the batches not known to reach a replica are sent
  there again; those that made it before the switch are recognised and not counted again.

Memory is bounded: at most :data:`MAX_FILE_COUNTERS` distinct (day, file) counters wait to
be written (beyond that, the downloads of further files are still counted in
``STATS_TOTAL`` and the per-mirror counters, but not per file: logged), and written batches
are kept for a replay at most :data:`KEEP_SECONDS` and :data:`MAX_KEPT_BYTES` (then the
oldest are forgotten, logged: only a failover after that could lose them).

Stopped while Redis cannot take them, a process saves its batches not known written to a file
of ``StatsSpoolDir`` (:mod:`mirrorbits.statsspool`), with their ids; the daemon's service
(``replays_spool``) takes them into its own flushes (sent first, under their ids) at its start,
when writes work again after an outage, and every :data:`SPOOL_CHECK_INTERVAL` seconds, and
deletes a file once all its batches are known written.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure

from mirrorbits import statsspool
from mirrorbits.logs import Logger
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.redis import MasterSession
from mirrorbits.store.statistics import (
    day_suffixes,
    downloads_per_file,
    file_downloads,
    file_downloads_in,
    mirror_downloads,
    seen_within,
)
from mirrorbits.store.statsflush import (
    ScriptArguments,
    WriteRefused,
    Written,
    renew_record,
    replica_acks,
    write_batch,
)
from mirrorbits.ticking import start_loop, stop_loop

log = Logger()

_DAY = 86400
_INT64 = 1 << 63
_PERIOD_PART = re.compile(r"[+-]?[0-9]+")

# Seconds between two flushes. The reference flushes every 0.5 s: under a load spread over
# many files each flush then writes nearly one counter per download (four HINCRBY each), and
# a flush every 2 s wrote half as many, for 4-5 us less worker CPU and 2 us less Redis CPU per
# request (bench/redirect, docs/performance.md); a kill -9 loses at most these 2 s.
FLUSH_INTERVAL = 2.0
# Distinct (day, file) counters waiting to be written: 100 to 200 bytes each in memory, so
# about 20 MB at most (plus, while Redis refuses a batch, that batch encoded: 10 MB at most).
MAX_FILE_COUNTERS = 100_000
# Written batches are kept for a replay on a new master until a replica holds them, but not
# longer than this (well under statsflush.BATCH_TTL, so a replay is always recognised)...
KEEP_SECONDS = 600.0
# ...nor beyond this many bytes of encoded batches (the oldest are forgotten first).
MAX_KEPT_BYTES = 32 * 1024 * 1024
REPLICA_TIMEOUT = 1.0  # seconds a flush waits for a replica's acknowledgement
# Counters of a batch encoded per reactor turn (0.15–0.7 ms): a batch of one worker's 0.5 s
# at 10,000 requests/s over many files holds ~5,000, which took the reactor 1.5–5 ms at once.
ENCODE_SLICE = 500
# Seconds between two looks into StatsSpoolDir for what a stopped process kept there (an HTTP
# worker replaced, the processes an upgrade retired).
SPOOL_CHECK_INTERVAL = 5.0

# (UTC day, field) -> amount, for one kind of counter.
_Counts = Counter[tuple[date, str]]

Sessions = Callable[[], AbstractAsyncContextManager[MasterSession]]


def utc_date(seconds: float) -> date:
    """The UTC calendar date of a Unix time."""
    return datetime.fromtimestamp(seconds, UTC).date()


@define
class _Batch:
    """Counters waiting to be written: per file, per mirror, bytes per mirror, in all."""

    files: _Counts = field(factory=Counter)
    mirrors: _Counts = field(factory=Counter)
    bytes: _Counts = field(factory=Counter)
    total: int = 0

    def __bool__(self) -> bool:
        return self.total > 0

    def downloads(self) -> int:
        return self.total


@define(eq=False)
class _Sealed:
    """A batch with its id, encoded once (a slice per reactor turn: :meth:`encode`), kept
    until a replica is known to hold it."""

    batch_id: str
    downloads: int
    _encoding: ScriptArguments | None
    generation: int | None = None  # the link it was last written on; None: not known written
    written_at: float | None = None  # when it was first known written
    duplicate: bool = False  # Redis had it already when it was last written
    _arguments: list[bytes] | None = None
    _size: int = 0

    def encode(self, limit: int) -> bool:
        """Encode up to ``limit`` more counters; whether the arguments are ready."""
        return self._encoding is None or self._encoding.advance(limit)

    @property
    def arguments(self) -> list[bytes]:
        """The script's arguments (what is not encoded yet is encoded now)."""
        if self._arguments is None:
            assert self._encoding is not None
            self._arguments = self._encoding.complete()
            self._size = sum(map(len, self._arguments))
            self._encoding = None  # the counters are no longer needed
        return self._arguments

    @property
    def size(self) -> int:
        """Bytes of the encoded batch (so far, while it is being encoded)."""
        return self._size if self._encoding is None else self._encoding.size


@define(eq=False)
class StatsService(Service):
    """Aggregates downloads in memory and commits them to the ``STATS_*`` keys.

    ``sessions()`` lends a connection to the master (``RedisService.session``).
    """

    _sessions: Sessions
    _clock: IReactorTime
    _flush_interval: float = FLUSH_INTERVAL
    stall_warning: float = 5.0
    stop_timeout: float = 3.0
    max_file_counters: int = MAX_FILE_COUNTERS
    keep_seconds: float = KEEP_SECONDS
    max_kept_bytes: int = MAX_KEPT_BYTES
    replica_timeout: float = REPLICA_TIMEOUT
    encode_slice: int = ENCODE_SLICE
    # StatsSpoolDir ("": none); the daemon's service also writes to Redis what is found there
    spool_dir: Callable[[], str] = lambda: ""
    replays_spool: bool = False
    spool_check_interval: float = SPOOL_CHECK_INTERVAL
    _batch: _Batch = field(init=False, factory=_Batch)
    _kept: list[_Sealed] = field(init=False, factory=list)
    _inflight: Deferred[None] | None = field(init=False, default=None)
    _inflight_since: float = field(init=False, default=0.0)
    _warned: bool = field(init=False, default=False)
    _unconfirmed_warned: bool = field(init=False, default=False)
    _files_dropped: int = field(init=False, default=0)
    _loop: LoopingCall | None = field(init=False, default=None)
    _node: str = field(init=False, factory=lambda: secrets.token_hex(8))
    _sequence: itertools.count[int] = field(init=False, factory=lambda: itertools.count(1))
    _day: date = field(init=False, factory=lambda: date(1970, 1, 1))
    _day_start: float = field(init=False, default=0.0)
    _day_end: float = field(init=False, default=0.0)
    # spool files read, with their batches (deleted once all are known written)
    _spooled: dict[str, list[_Sealed]] = field(init=False, factory=dict)
    _spool_due: bool = field(init=False, default=True)
    _spool_read_at: float = field(init=False, default=0.0)
    _spool_failed: str = field(init=False, default="")  # the directory's error, said once
    _spool_stuck: set[str] = field(init=False, factory=set)  # unreadable, cannot be moved

    def __attrs_post_init__(self) -> None:
        self.name = "stats"

    def count_download(self, mirror_id: int, path: str, size: int) -> None:
        """Count one download of ``path`` (``size`` bytes) from ``mirror_id``; no I/O."""
        if not path:
            return
        day = self._today()
        mirror = str(mirror_id)
        batch = self._batch
        batch.total += 1
        files = batch.files
        key = (day, path)
        counted = files.get(key)
        if counted is not None:
            files[key] = counted + 1
        elif len(files) < self.max_file_counters:
            files[key] = 1
        else:
            self._file_counter_dropped()
        batch.mirrors[day, mirror] += 1
        if size > 0:
            batch.bytes[day, mirror] += size

    def pending_downloads(self) -> int:
        """Counted downloads not yet known safe: waiting, or written but not confirmed by a
        replica the master is expected to have."""
        return self._batch.total + sum(sealed.downloads for sealed in self._kept)

    def when_idle(self) -> Deferred[None]:
        """A Deferred firing once no write to Redis is in flight."""
        idle: Deferred[None] = Deferred()
        if self._inflight is None:
            idle.callback(None)
            return idle

        def release(result: object) -> object:
            if not idle.called:  # a caller may have timed it out
                idle.callback(None)
            return result

        self._inflight.addBoth(release)
        return idle

    def _today(self) -> date:
        now = self._clock.seconds()
        if not self._day_start <= now < self._day_end:
            self._day = utc_date(now)
            midnight = datetime(self._day.year, self._day.month, self._day.day, tzinfo=UTC)
            self._day_start = midnight.timestamp()
            self._day_end = self._day_start + _DAY
        return self._day

    def _file_counter_dropped(self) -> None:
        if not self._files_dropped:
            log.error("Statistics memory full ({n} files waiting to be written): further files "
                      "are counted in the totals only until Redis takes the counters",
                      n=self.max_file_counters)
        self._files_dropped += 1

    def startService(self) -> None:
        super().startService()
        self._loop = start_loop(self._tick, self._clock, self._flush_interval, now=False)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        stop_loop(self._loop)
        self._loop = None
        return Deferred.fromCoroutine(self._final_flush())

    def _tick(self) -> None:
        try:
            self._forget_old_batches()
            if self._inflight is not None:
                stalled = self._clock.seconds() - self._inflight_since
                if stalled >= self.stall_warning:
                    self._warn(f"Redis has not answered for {stalled:.0f} s")
                return
            self._read_spool()
            self._start_flush()
        except Exception:
            outage.report(log, "Statistics flush", Failure(), "Statistics flush failed")

    def _start_flush(self) -> Deferred[None] | None:
        """Write what waits, replay what a new master may lack; on failure everything stays
        in memory for the next attempt. Never fails."""
        if not self._batch and not self._kept:
            return None
        self._inflight_since = self._clock.seconds()
        d = self._inflight = Deferred.fromCoroutine(self._flush())

        def done(result: object) -> None:
            self._inflight = None
            self._settle_spool()
            if isinstance(result, Failure):
                self._warn(str(result.value) or type(result.value).__name__)

        return d.addBoth(done)

    def _warn(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            log.warn("Uncommited stats kept in-memory: {reason}", reason=reason)

    async def _flush(self) -> None:
        async with self._sessions() as session:
            try:
                await self._write(session)
            except WriteRefused:
                raise  # answered: the connection is fine
            except BaseException:
                if session.conn.connected:
                    session.abandon()  # a reply may still come: nobody would read it
                raise

    async def _write(self, session: MasterSession) -> None:
        """Replays, then the waiting counters, then (if a replica is expected) ``WAIT``."""
        generation = session.generation
        replays = [sealed for sealed in self._kept if sealed.generation != generation]
        moved = [sealed for sealed in replays if sealed.generation is not None]
        written = 0
        duplicates = 0
        for sealed in replays:
            outcome = await self._send(session, sealed)
            written += 0 if outcome.duplicate else sealed.downloads
            duplicates += outcome.duplicate
        if moved:
            log.info("Statistics batches sent again to a new master: {n} ({missing} "
                     "download(s) it lacked, {there} batch(es) it had already)",
                     n=len(moved), missing=written, there=duplicates)
        sent = bool(replays)
        if self._batch:
            sealed = await self._seal()
            await self._send(session, sealed)
            written += sealed.downloads
            sent = True
        if self._warned:
            self._warned = False
            self._spool_due = True  # what processes stopped during the outage saved
            log.info("Statistics written again ({n} download(s) kept meanwhile)", n=written)
        if self._files_dropped and len(self._batch.files) < self.max_file_counters:
            log.warn("{n} download(s) were counted without their file (memory was full)",
                     n=self._files_dropped)
            self._files_dropped = 0
        if not self._kept:
            return
        if not session.expects_replica:  # a lone master: nothing else can hold them
            self._kept.clear()
            return
        if not sent:  # WAIT follows the writes of its own connection: write one
            await renew_record(session.conn, self._kept[-1].batch_id)
        if await replica_acks(session.conn, self.replica_timeout):
            self._kept.clear()  # the replica holds everything this master wrote before
            self._unconfirmed_warned = False
        elif not self._unconfirmed_warned:
            self._unconfirmed_warned = True
            log.warn("No replica acknowledged the statistics within {t} s: {n} download(s) "
                     "kept to be written again after a failover",
                     t=self.replica_timeout, n=self.pending_downloads())

    async def _seal(self) -> _Sealed:
        """The waiting counters become a batch with an id; new downloads start a new one.
        It is encoded ``encode_slice`` counters per reactor turn: the requests are answered
        between two slices instead of waiting for the whole batch."""
        sealed = self._new_sealed()
        self._kept.append(sealed)  # before sending: a lost reply leaves it to send again
        while not sealed.encode(self.encode_slice):  # stopped meanwhile: sent as a replay
            await deferLater(self._clock, 0)
        return sealed

    def _new_sealed(self) -> _Sealed:
        """The waiting counters as a batch with a new id, not encoded yet; new downloads
        start a new one."""
        batch, self._batch = self._batch, _Batch()
        return _Sealed(f"{self._node}:{next(self._sequence)}", batch.total, ScriptArguments(
            batch.files, batch.mirrors, batch.bytes, batch.total))

    async def _send(self, session: MasterSession, sealed: _Sealed) -> Written:
        outcome = await write_batch(session.conn, sealed.batch_id, sealed.arguments)
        sealed.generation = session.generation
        sealed.duplicate = outcome.duplicate
        if sealed.written_at is None:
            sealed.written_at = self._clock.seconds()
        if outcome.refused:  # applied in part: retrying would count the rest twice
            log.error("{n} statistics increments were refused by Redis", n=outcome.refused)
        return outcome

    def _forget_old_batches(self) -> None:
        """Forget written batches older than ``keep_seconds`` or, oldest first, those beyond
        ``max_kept_bytes``; batches not known written are never forgotten."""
        if not self._kept:
            return
        now = self._clock.seconds()
        size = sum(sealed.size for sealed in self._kept)
        kept: list[_Sealed] = []
        forgotten = 0
        for sealed in self._kept:  # oldest first
            if sealed.written_at is not None and (
                    now - sealed.written_at > self.keep_seconds or size > self.max_kept_bytes):
                size -= sealed.size
                forgotten += sealed.downloads
            else:
                kept.append(sealed)
        if forgotten:
            self._kept = kept
            log.warn("{n} download(s) written to Redis were never confirmed by a replica: no "
                     "longer kept for a failover", n=forgotten)

    async def _final_flush(self) -> None:
        """Commit what is left, waiting at most ``stop_timeout`` seconds in all (also for
        the master to be reachable again, if it is being switched)."""
        deadline = self._clock.seconds() + self.stop_timeout
        if self._inflight is not None:
            try:
                await self.when_idle().addTimeout(self.stop_timeout, self._clock)
            except Exception:
                return self._report_lost()
        while self._batch or self._kept:
            left = deadline - self._clock.seconds()
            if left <= 0:
                break
            d = self._start_flush()
            if d is None:
                break
            if not d.called:
                d.addTimeout(left, self._clock)
            await d
            if self._batch or self._kept:
                await deferLater(self._clock, min(0.1, max(left, 0.0)), lambda: None)
        return self._report_lost()

    def _read_spool(self) -> None:
        """Take the batches of the spool files not read yet, to be sent (with their ids)
        by the next flush; a file that cannot be read is set aside, said in one line."""
        directory = self.spool_dir()
        if not (self.replays_spool and directory) or self._warned:
            return
        now = self._clock.seconds()
        if not self._spool_due and now - self._spool_read_at < self.spool_check_interval:
            return
        self._spool_due = False
        self._spool_read_at = now
        try:
            paths = statsspool.spooled_files(directory)
        except OSError as err:
            reason = err.strerror or str(err)
            if reason != self._spool_failed:
                self._spool_failed = reason
                log.warn("Statistics spool directory {dir} cannot be read: {error}",
                         dir=directory, error=reason)
            return
        self._spool_failed = ""
        for path in paths:
            if path not in self._spooled and path not in self._spool_stuck:
                self._take_spool_file(path)

    def _take_spool_file(self, path: str) -> None:
        try:
            batches = statsspool.load(path)
        except FileNotFoundError:  # read and deleted by another process meanwhile
            return
        except statsspool.SpoolError as err:
            try:
                aside = statsspool.set_aside(path)
            except OSError as move_error:
                self._spool_stuck.add(path)  # not read again by this process
                log.warn("Statistics spool file {file} cannot be read ({error}) nor set "
                         "aside ({move_error}): left there", file=path, error=err,
                         move_error=move_error.strerror or move_error)
            else:
                log.warn("Statistics spool file {file} cannot be read ({error}): set aside "
                         "as {aside}, not counted", file=path, error=err, aside=aside)
            return
        sealed = [_Sealed(batch.batch_id, batch.downloads, None,
                          arguments=list(batch.arguments),
                          size=sum(map(len, batch.arguments))) for batch in batches]
        if not sealed:
            statsspool.remove(path)
            return
        self._spooled[path] = sealed
        self._kept.extend(sealed)

    def _settle_spool(self) -> None:
        """Delete the spool files whose batches are all known written."""
        for path, sealed in list(self._spooled.items()):
            if all(s.generation is not None for s in sealed):
                del self._spooled[path]
                try:
                    statsspool.remove(path)
                except OSError as err:  # written: the batch ids keep it from counting twice
                    log.warn("Statistics spool file {file} written but not deleted: {error}",
                             file=path, error=err.strerror or err)
                duplicates = sum(s.duplicate for s in sealed)
                log.info("Downloads kept at a stop written to Redis: {n} ({dup} batch(es) it "
                         "had already), from {file}", file=path, dup=duplicates,
                         n=sum(s.downloads for s in sealed if not s.duplicate))

    def _report_lost(self) -> None:
        self._settle_spool()
        unwritten = [s for s in self._kept if s.generation is None]
        waiting = self._batch.total + sum(s.downloads for s in unwritten)
        unconfirmed = self.pending_downloads() - waiting
        if waiting and self.spool_dir():
            waiting = self._save(unwritten, waiting)
        if waiting:
            log.error("Could not commit {n} download(s) at shutdown", n=waiting)
        if unconfirmed:
            log.warn("{n} download(s) written at shutdown were not confirmed by a replica",
                     n=unconfirmed)

    def _save(self, unwritten: list[_Sealed], waiting: int) -> int:
        """Save the batches not known written, the waiting counters as one more, to a
        spool file; the downloads still lost (0 once saved)."""
        if self._batch:
            unwritten = [*unwritten, self._new_sealed()]
        batches = [statsspool.SpooledBatch(s.batch_id, s.downloads, tuple(s.arguments))
                   for s in unwritten]
        directory = self.spool_dir()
        try:
            path = statsspool.save(directory, batches)
        except OSError as err:
            log.error("Could not keep the statistics in {dir}: {error}", dir=directory,
                      error=err.strerror or err)
            return waiting
        for read in self._spooled:  # their unwritten batches are in the new file
            try:
                statsspool.remove(read)
            except OSError as err:
                log.warn("Statistics spool file {file} kept again in {new} but not deleted: "
                         "{error}", file=read, new=path, error=err.strerror or err)
        self._spooled.clear()
        log.warn("Saved {n} download(s) to {file}: they are counted at the next start",
                 n=waiting, file=path)
        return 0


@define(eq=False)
class RangeDeduplicator:
    """Counts a Range request once per (client IP, User-Agent, path) and interval (§8.3.11)."""

    _get_client: Callable[[], RedisClient]
    interval_s: int
    _supports_set_get: Callable[[], bool]
    _clock: IReactorTime | None = None
    _timeout_s: float = 1.0

    async def should_count(
        self, client_ip: str, user_agent: str, path: str, has_range: bool
    ) -> bool:
        """Whether this download is counted. Counted when Redis cannot tell."""
        if not has_range or self.interval_s <= 0:
            return True
        digest = hashlib.sha256(f"{client_ip}/{user_agent}".encode("utf-8", "surrogateescape"))
        try:
            seen = await seen_within(self._get_client(), digest.hexdigest(), path,
                                     self.interval_s, set_get=self._supports_set_get(),
                                     clock=self._clock, timeout_s=self._timeout_s)
        except Exception as err:
            log.debug("Range de-duplication skipped: {error}", error=err)
            return True
        return not seen


def time_key_coverage(start: datetime, end: datetime) -> list[str]:
    """The fewest day/month/year key suffixes covering [start, end) (§11.2; no ``_`` prefix).

    Pass UTC datetimes. Like the reference, the end day is usually excluded.
    """
    if start.date() == end.date():
        return [_day_key(start)]
    out: list[str] = []
    if start.day != 1:
        month = start.month
        while start.month == month and start != end:  # at most 31 turns
            out.append(_day_key(start))
            if (following := _next_day(start)) is None:
                return out
            start = following
    last_year = start.year == datetime.max.year
    while not (last_year and start.month == 12):  # one turn per year or month of the range
        if start.month == 1 and start.day == 1 and not last_year:
            next_year = start.replace(year=start.year + 1)
            if next_year <= end:
                out.append(f"{start.year:04d}")
                start = next_year
                last_year = start.year == datetime.max.year
                continue
        if start.month == 12:
            next_month = start.replace(year=start.year + 1, month=1, day=1)
        else:
            next_month = start.replace(month=start.month + 1, day=1)
        if next_month > end:
            break
        out.append(f"{start.year:04d}_{start.month:02d}")
        start = next_month
    while (following := _next_day(start)) is not None and following <= end:  # <= 31 turns
        out.append(_day_key(start))
        start = following
    return out


def _day_key(moment: datetime) -> str:
    return f"{moment.year:04d}_{moment.month:02d}_{moment.day:02d}"


def _next_day(moment: datetime) -> datetime | None:
    """The same time one day later, or None past the end of the calendar."""
    try:
        return moment + timedelta(days=1)
    except OverflowError:
        return None


def _period_parts(period: str) -> list[str]:
    parts = period.split("-", 2)
    for part in parts:
        if part and (not _PERIOD_PART.fullmatch(part) or not -_INT64 <= int(part) < _INT64):
            raise ValueError("Invalid period")
    return [part for part in parts if part]


async def file_stats(client: RedisClient, path: str, period: str | None,
                     today: date) -> dict[str, int | str | None]:
    """The ``?stats[=period]`` answer for ``path`` (§8.10); ``today`` is the UTC date.

    Raises ``ValueError('Invalid period')`` for a malformed period.
    """
    parts = _period_parts(period or "")
    if not parts:
        names = ("Today", "Month", "Year", "Total")
        counts = await file_downloads(client, path, day_suffixes(today))
        return dict(zip(names, counts, strict=True))
    downloads = await file_downloads_in(client, path, "_" + "_".join(parts))
    return {"Period": period, "Downloads": downloads}


async def stats_files(
    client: RedisClient, pattern: re.Pattern[str], start: datetime, end: datetime
) -> dict[str, int]:
    """Downloads per file path matching ``pattern`` (unanchored search) over the range."""
    suffixes = [f"_{k}" for k in time_key_coverage(start, end)]
    return await downloads_per_file(client, pattern, suffixes)


async def stats_mirror(
    client: RedisClient, mirror_id: int, start: datetime, end: datetime
) -> tuple[int, int]:
    """(download requests, bytes) of one mirror over the range."""
    suffixes = [f"_{k}" for k in time_key_coverage(start, end)]
    return await mirror_downloads(client, mirror_id, suffixes)
