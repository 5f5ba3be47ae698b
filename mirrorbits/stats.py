"""Download statistics: counting from the request path, flushing to Redis, reading back.

Counting (spec §11.1) is O(1) and does no I/O: :meth:`StatsService.count_download`
adds to in-memory counters per UTC day, and a ``LoopingCall`` on the injected clock
writes them every 500 ms in one MULTI. Counters that cannot be written stay in
memory and are retried; :meth:`StatsService.stopService` makes a last, time-bounded
flush (fix of §20 item 17: the reference lost up to 0.5 s of counts on SIGTERM).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from mirrorbits.logs import Logger
from mirrorbits.store import keys

log = Logger()

_DAY = 86400
_INT64 = 1 << 63
_PERIOD_PART = re.compile(r"[+-]?[0-9]+")

# (UTC day, field) -> amount, for one kind of counter.
_Counts = Counter[tuple[date, str]]


def utc_date(seconds: float) -> date:
    """The UTC calendar date of a Unix time."""
    return datetime.fromtimestamp(seconds, UTC).date()


def _suffixes(day: date) -> tuple[str, str, str, str]:
    return keys.stats_suffixes(day.year, day.month, day.day)


@define
class _Batch:
    """Counters waiting to be written: per file, per mirror, bytes per mirror."""

    files: _Counts = field(factory=Counter)
    mirrors: _Counts = field(factory=Counter)
    bytes: _Counts = field(factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.files or self.mirrors or self.bytes)

    def merge(self, other: _Batch) -> None:
        self.files.update(other.files)
        self.mirrors.update(other.mirrors)
        self.bytes.update(other.bytes)

    def downloads(self) -> int:
        return sum(self.files.values())


# One script per flush. ARGV[1..3]: the key prefixes of the three counter kinds; ARGV[4]: the
# STATS_TOTAL increment; ARGV[5]: the increments, each "<kind><day>\0<amount>\0<field>\0"
# (kind 1-3, day an index; file names cannot contain NUL); ARGV[6..]: four key suffixes per
# day. Each increment goes to the four levels of its day. Returns how many increments Redis
# refused (e.g. a key of another type).
_FLUSH_SCRIPT = """
local failed = 0
local payload = ARGV[5]
local pos = 1
local size = #payload
while pos <= size do
  local a = string.find(payload, "\\0", pos, true)
  local b = string.find(payload, "\\0", a + 1, true)
  local c = string.find(payload, "\\0", b + 1, true)
  local prefix = ARGV[tonumber(string.sub(payload, pos, pos))]
  local first = 5 + 4 * tonumber(string.sub(payload, pos + 1, a - 1))
  local amount = string.sub(payload, a + 1, b - 1)
  local name = string.sub(payload, b + 1, c - 1)
  for level = 1, 4 do
    local reply = redis.pcall('HINCRBY', prefix .. ARGV[first + level], name, amount)
    if type(reply) == 'table' and reply.err then failed = failed + 1 end
  end
  pos = c + 1
end
local total = tonumber(ARGV[4])
if total and total > 0 then
  local reply = redis.pcall('INCRBY', KEYS[1], total)
  if type(reply) == 'table' and reply.err then failed = failed + 1 end
end
return failed
"""


def _flush_arguments(batch: _Batch) -> list[bytes] | None:
    """The ``ARGV`` of :data:`_FLUSH_SCRIPT` for ``batch`` (None when there is nothing to do).

    Building one payload costs a fraction of what thousands of separate arguments cost the
    Redis client to encode; names are sent as the bytes of the file name (undecodable bytes
    of a non-UTF-8 name included).
    """
    days: dict[date, bytes] = {}
    parts: list[bytes] = []
    for kind, counts in ((b"1", batch.files), (b"2", batch.mirrors), (b"3", batch.bytes)):
        for (day, name), amount in counts.items():
            if not amount:
                continue
            index = days.get(day)
            if index is None:
                index = days[day] = str(len(days)).encode()
            parts.append(b"%s%s\0%d\0%s\0" % (
                kind, index, amount, name.encode("utf-8", "surrogateescape")))
    total = batch.downloads()
    if not parts and not total:
        return None
    arguments = [keys.STATS_FILE.encode(), keys.STATS_MIRROR.encode(),
                 keys.STATS_MIRROR_BYTES.encode(), b"%d" % total, b"".join(parts)]
    for day in days:
        arguments.extend(suffix.encode() for suffix in _suffixes(day))
    return arguments


@define(eq=False)
class StatsService(Service):
    """Aggregates downloads in memory and commits them to the ``STATS_*`` keys."""

    _get_client: Callable[[], Any]
    _clock: IReactorTime
    _flush_interval: float = 0.5
    stall_warning: float = 5.0
    stop_timeout: float = 3.0
    _batch: _Batch = field(init=False, factory=_Batch)
    _inflight: Deferred[None] | None = field(init=False, default=None)
    _inflight_batch: _Batch | None = field(init=False, default=None)
    _inflight_since: float = field(init=False, default=0.0)
    _warned: bool = field(init=False, default=False)
    _loop: LoopingCall | None = field(init=False, default=None)
    _day: date = field(init=False, factory=lambda: date(1970, 1, 1))
    _day_start: float = field(init=False, default=0.0)
    _day_end: float = field(init=False, default=0.0)

    def __attrs_post_init__(self) -> None:
        self.name = "stats"

    def count_download(self, mirror_id: int, path: str, size: int) -> None:
        """Count one download of ``path`` (``size`` bytes) from ``mirror_id``; no I/O."""
        if not path:
            return
        day = self._today()
        mirror = str(mirror_id)
        batch = self._batch
        batch.files[day, path] += 1
        batch.mirrors[day, mirror] += 1
        if size > 0:
            batch.bytes[day, mirror] += size

    def pending_downloads(self) -> int:
        """How many counted downloads are not committed yet (in memory or in flight)."""
        inflight = self._inflight_batch.downloads() if self._inflight_batch else 0
        return self._batch.downloads() + inflight

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

    def startService(self) -> None:
        super().startService()
        loop = LoopingCall(self._tick)
        loop.clock = self._clock
        self._loop = loop
        loop.start(self._flush_interval, now=False)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        return Deferred.fromCoroutine(self._final_flush())

    def _tick(self) -> None:
        try:
            if self._inflight is not None:
                stalled = self._clock.seconds() - self._inflight_since
                if stalled >= self.stall_warning:
                    self._warn(f"Redis has not answered for {stalled:.0f} s")
                return
            self._start_flush()
        except Exception:
            log.failure("Statistics flush failed")

    def _start_flush(self) -> Deferred[None] | None:
        """Write the current counters; on failure they return to memory. Never fails."""
        if not self._batch:
            return None
        batch, self._batch = self._batch, _Batch()
        self._inflight_batch = batch
        self._inflight_since = self._clock.seconds()
        d = self._inflight = Deferred.fromCoroutine(self._write(batch))

        def committed(_: None) -> None:
            self._inflight = self._inflight_batch = None
            self._warned = False

        def failed(failure: Failure) -> None:
            self._inflight = self._inflight_batch = None
            batch.merge(self._batch)
            self._batch = batch
            self._warn(str(failure.value) or type(failure.value).__name__)

        return d.addCallbacks(committed, failed)

    def _warn(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            log.warn("Uncommited stats kept in-memory: {reason}", reason=reason)

    async def _write(self, batch: _Batch) -> None:
        """All increments of ``batch`` in one atomic script: one command, not one per field.

        Redis runs a script without interleaving other clients, like the reference's MULTI,
        but the daemon builds and awaits a single command per flush, with one payload.
        """
        arguments = _flush_arguments(batch)
        if arguments is None:
            return
        failed = await self._get_client().execute_command(
            "EVAL", _FLUSH_SCRIPT, 1, keys.STATS_TOTAL, *arguments)
        if failed and int(failed):  # applied in part: retrying would count the rest twice
            log.error("{n} statistics increments were refused by Redis", n=int(failed))

    async def _final_flush(self) -> None:
        """Commit what is left, waiting at most ``stop_timeout`` seconds in all."""
        deadline = self._clock.seconds() + self.stop_timeout
        if self._inflight is not None:
            try:
                await self.when_idle().addTimeout(self.stop_timeout, self._clock)
            except Exception:
                return self._report_lost()
        d = self._start_flush()
        if d is not None:
            if not d.called:
                d.addTimeout(max(deadline - self._clock.seconds(), 0.0), self._clock)
            await d
        return self._report_lost()

    def _report_lost(self) -> None:
        lost = self.pending_downloads()
        if lost:
            log.error("Could not commit {n} download(s) at shutdown", n=lost)


@define(eq=False)
class RangeDeduplicator:
    """Counts a Range request once per (client IP, User-Agent, path) and interval (§8.3.11)."""

    _get_client: Callable[[], Any]
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
        key = keys.downloaded(digest.hexdigest(), path)
        try:
            client = self._get_client()
            if self._supports_set_get():
                d = client.execute_command("SET", key, "1", "GET", "EX", self.interval_s)
                previous = await self._bounded(d)
            else:
                previous = await self._bounded(client.get(key))
                await self._bounded(client.set(key, "1", expire=self.interval_s))
        except Exception as err:
            log.debug("Range de-duplication skipped: {error}", error=err)
            return True
        return previous is None

    def _bounded(self, d: Deferred[Any]) -> Deferred[Any]:
        if self._clock is not None and not d.called:
            d.addTimeout(self._timeout_s, self._clock)
        return d


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


def _to_int(value: object) -> int:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def _period_parts(period: str) -> list[str]:
    parts = period.split("-", 2)
    for part in parts:
        if part and (not _PERIOD_PART.fullmatch(part) or not -_INT64 <= int(part) < _INT64):
            raise ValueError("Invalid period")
    return [part for part in parts if part]


async def file_stats(client: Any, path: str, period: str | None, today: date) -> dict[str, Any]:
    """The ``?stats[=period]`` answer for ``path`` (§8.10); ``today`` is the UTC date.

    Raises ``ValueError('Invalid period')`` for a malformed period.
    """
    parts = _period_parts(period or "")
    if not parts:
        names = ("Today", "Month", "Year", "Total")
        replies = await gatherResults(
            [client.hget(keys.STATS_FILE + suffix, path) for suffix in _suffixes(today)]
        )
        return {name: _to_int(reply) for name, reply in zip(names, replies, strict=True)}
    reply = await client.hget(keys.STATS_FILE + "_" + "_".join(parts), path)
    return {"Period": period, "Downloads": _to_int(reply)}


async def stats_files(
    client: Any, pattern: re.Pattern[str], start: datetime, end: datetime
) -> dict[str, int]:
    """Downloads per file path matching ``pattern`` (unanchored search) over the range."""
    hashes = await gatherResults(
        [client.hgetall(f"{keys.STATS_FILE}_{k}") for k in time_key_coverage(start, end)]
    )
    totals: Counter[str] = Counter()
    for content in hashes:
        for name, value in (content or {}).items():
            if pattern.search(name):
                totals[name] += _to_int(value)
    return dict(totals)


async def stats_mirror(
    client: Any, mirror_id: int, start: datetime, end: datetime
) -> tuple[int, int]:
    """(download requests, bytes) of one mirror over the range."""
    suffixes = [f"_{k}" for k in time_key_coverage(start, end)]
    field_name = str(mirror_id)
    requests = await gatherResults(
        [client.hget(keys.STATS_MIRROR + s, field_name) for s in suffixes]
    )
    sizes = await gatherResults(
        [client.hget(keys.STATS_MIRROR_BYTES + s, field_name) for s in suffixes]
    )
    return sum(map(_to_int, requests)), sum(map(_to_int, sizes))
