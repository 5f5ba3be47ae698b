"""In-process cache of everything a redirect needs, kept fresh by Redis pub/sub.

Four bounded LRU maps (spec §17.1): local file info by path, the mirror IDs
holding a path, mirror records by ID, and a file's info on one mirror. Entries
are dropped by the pub/sub messages of spec §3.3 and all at once after a
pub/sub reconnection (messages may have been lost meanwhile).

Fixes the reference: a file requested before the local scan indexed it is
remembered as unknown only for ``negative_ttl`` seconds.
"""

from __future__ import annotations

import enum
import itertools
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Generic, Literal, TypeVar

from attrs import define, field
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from mirrorbits.helddown import HeldDown
from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.files import read_file
from mirrorbits.store.mirrors import mirror_ids, read_mirror
from mirrorbits.store.refresh import LOCAL, FileChange, read_file_changes
from mirrorbits.store.warmup import FileRecords, read_file_records, warm_order

K = TypeVar("K")
V = TypeVar("V")

log = Logger()



#: File-on-mirror records held per file of ``CacheFiles``: the default 200,000 files keep the
#: 1,000,000 records the cache always held (every mirror of 37,000 files on 27 mirrors each).
MIRROR_RECORDS_PER_FILE: Final = 5
#: Files whose records one script reads (after misses, and at start-up): it blocks Redis for
#: 3 to 8 us per file-on-mirror record, 4 to 11 ms for 50 files on 27 mirrors each.
MISS_BATCH: Final = 50
#: Batches of misses read at the same time (each on its own connection of the pool).
MISS_READS: Final = 3
#: Files whose changed records one script re-reads after pub/sub messages (a message names
#: one or two records: 200 files block Redis about a millisecond).
REFRESH_BATCH: Final = 200
#: Re-reads after pub/sub messages in flight at a time: one, so that an invalidation storm
#: takes at most one of Redis' turns at a time from the requests' misses (which have
#: :data:`MISS_READS`); the messages arriving meanwhile join the next one.
REFRESH_READS: Final = 1
#: Seconds at least between the starts of two re-read scripts of a worker in the daemon: at
#: most 100 scripts of :data:`REFRESH_BATCH` files a second (20,000 files, twice what a scan
#: commits); messages arriving meanwhile wait and join the next script, a path named again
#: only once. A storm then costs Redis a bounded number of scripts, however fast it comes.
REFRESH_INTERVAL: Final = 0.01
#: Counters of the messages about paths (8 bytes each, 8 MiB): a path's version is its
#: bucket's, so that a storm naming any number of paths leaves the others' memos (a table
#: of 100,000 paths restarted when full made every memo of the worker stale at once, once
#: per 100,000 paths named); two paths sharing a bucket (a storm of 100,000 paths moves
#: ~9 % of them) only have their memos rebuilt.
PATH_BUCKETS: Final = 1 << 20
#: What a file's re-read asks besides :data:`LOCAL` and mirror IDs: all its records.
WHOLE: Final = -1
#: Reads of a missing path before it is answered from one read that is not kept (its records
#: changed during each).
READ_TRIES: Final = 3


class _Missing(enum.Enum):
    MISSING = "missing"


#: What a map holds for a key it does not hold (``None`` is a value: "known unknown").
MISSING: Final = _Missing.MISSING
Missing = Literal[_Missing.MISSING]


class LRU(Generic[K, V]):
    """A dict bounded to ``capacity`` entries, evicting the least recently used."""

    __slots__ = ("_data", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | Missing:
        data = self._data
        try:
            value = data[key]
        except KeyError:
            return MISSING
        data.move_to_end(key)
        return value

    def peek(self, key: K) -> V | Missing:
        """:meth:`get` without making ``key`` the most recently used."""
        return self._data.get(key, MISSING)

    def put(self, key: K, value: V) -> None:
        data = self._data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.capacity:
            data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def resize(self, capacity: int) -> None:
        """Hold at most ``capacity`` entries from now on (the least recently used go)."""
        self.capacity = capacity
        data = self._data
        while len(data) > capacity:
            data.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[K]:
        return list(self._data)

    def items(self) -> list[tuple[K, V]]:
        return list(self._data.items())




@define(eq=False, repr=False)
class MirrorCache:
    """Read-through cache in front of Redis for the request path.

    Its ``repr`` is a summary: the services holding the cache are in the ``repr`` of their
    bound methods, which Twisted formats at each ``spawnProcess`` (a signal handler checked
    against :class:`signal.Handlers`); a ``repr`` of every record and of the message
    counters (8 MiB) made each rsync scan cost seconds and held up a stop.
    """

    get_client: Callable[[], RedisClient]
    clock: IReactorTime
    negative_ttl: float = 2.0
    files: LRU[str, tuple[FileInfo | None, float]] = field(factory=lambda: LRU(200_000))
    file_mirrors: LRU[str, tuple[int, ...]] = field(factory=lambda: LRU(200_000))
    mirrors: LRU[int, Mirror] = field(factory=lambda: LRU(10_000))
    mirror_files: LRU[tuple[int, str], FileInfo | None] = field(factory=lambda: LRU(1_000_000))
    mirror_listeners: list[Callable[[int], None]] = field(factory=list)
    # Mirror records put aside, answered from only while Redis cannot be read
    # (:meth:`held_candidates`): those :meth:`suspect_all` made the cache read again (pub/sub
    # lost) and those a mirror's message made it forget, each until a read of its mirror
    # succeeds (what that read said replaces it).
    _aside: dict[int, Mirror] = field(factory=dict)
    warmed: int = 0  # files whose records :meth:`warm` put in the cache
    # Misses read together (one script per MISS_BATCH files), each path
    # once however many requests want it: an invalidation storm costs a few round trips per
    # batch of files instead of one per record and request.
    batch_misses: bool = True
    _misses: dict[str, list[Deferred[None]]] = field(factory=dict)
    _in_flight: dict[str, list[Deferred[None]]] = field(factory=dict)
    _reading: int = 0  # batches being read
    # A file's pub/sub message re-reads its records in the background (batched like misses)
    # instead of dropping them: requests keep their answers meanwhile, and an invalidation
    # storm costs no request a wait nor a rebuild of unchanged files.
    refresh_in_background: bool = True
    _stale: dict[str, set[int]] = field(factory=dict)  # to read again (parts), in order
    _refreshing: set[str] = field(factory=set)
    _again: dict[str, set[int]] = field(factory=dict)  # changed again while being read
    _refresh_reads: int = 0
    _refresh_waiters: dict[str, list[Deferred[None]]] = field(factory=dict)
    # Seconds at least between the starts of two re-read scripts (REFRESH_INTERVAL in the
    # daemon; 0: at once, for tests on a clock that does not move by itself).
    refresh_interval: float = 0.0
    _next_refresh: float = 0.0  # when the next re-read script may start
    _refresh_call: IDelayedCall | None = None
    generation: int = 0  # bumped by invalidations that may concern any path
    # Counters of the messages about paths, one per bucket of the paths' hashes (a power of
    # two; see PATH_BUCKETS): a fixed table, never restarted.
    path_buckets: int = field(default=PATH_BUCKETS, kw_only=True)
    _path_counts: array[int] = field(init=False)
    _path_mask: int = field(init=False)
    # Bumped when the cache is cleared: with a path's counter, what a read of the path's own
    # records (FILE_, FILEMIRRORS_, FILEINFO_) may be checked against. A mirror's message
    # moves ``generation`` but not this: it changes no file's records, and a file read
    # meanwhile is still right.
    _epoch: int = 0
    _mirror_versions: dict[int, int] = field(factory=dict)  # messages seen, by mirror
    _clears: int = 0  # :meth:`clear` calls: a re-read started before one is not kept
    # Mirror protocols this node found down while Redis would not record it: the records
    # handed out say them down (mirrorbits.helddown); a change moves ``generation``.
    held_down: HeldDown = field(factory=HeldDown)
    # Messages make the cache read at once, in the background, what they name: a mirror's
    # record, and a file it left out (no mirror held it at the fill), kept as the fill keeps
    # one. What an outage then leaves in memory is what Redis held, not what requests
    # happened to read: a process that had served no download of a file first mirrored after
    # its fill answered each one with a 503 for the whole outage. (The daemon; off, the
    # cache reads only when asked, as tests of its other behaviours expect.)
    read_ahead: bool = False
    _mirror_reads: set[int] = field(factory=set)  # mirrors being read ahead

    def _held_down_changed(self, released: frozenset[int]) -> None:
        for mirror_id in released:  # read again, as after its message: Redis holds the truth
            self.on_mirror_update(str(mirror_id))
        self.generation += 1  # what was derived from the records handed out is stale

    def __repr__(self) -> str:
        return (f"<MirrorCache: {len(self.files)} files, {len(self.mirrors)} mirrors, "
                f"{len(self.mirror_files)} file-on-mirror records>")

    def __attrs_post_init__(self) -> None:
        if self.path_buckets < 1 or self.path_buckets & (self.path_buckets - 1):
            raise ValueError(f"path_buckets {self.path_buckets} is not a power of two")
        self._path_counts = array("Q", bytes(8 * self.path_buckets))
        self._path_mask = self.path_buckets - 1
        self.held_down.until_read = True  # released once this cache read the record again
        self.held_down.listeners.append(self._held_down_changed)

    def version(self, path: str) -> tuple[int, int]:
        """What the cache knows of ``path``, as a value that changes whenever that may change.

        Results derived from cached data (a file's prefiltered mirrors...) are valid while
        the version they were computed at is current. A file's own messages only change its
        version (and those of the few paths sharing its counter: their results are computed
        again, never revived); a mirror's change or a reconnection changes every path's.
        """
        return self.generation, self._path_counts[hash(path) & self._path_mask]

    def path_bucket(self, path: str) -> int:
        """The counter ``path``'s messages move (shared with other paths)."""
        return hash(path) & self._path_mask

    def _bump(self, path: str) -> None:
        self._path_counts[hash(path) & self._path_mask] += 1

    def records_version(self, path: str) -> tuple[int, int]:
        """What the cache knows of ``path``'s own records, as a value that changes whenever a
        message about the path arrives (or the cache is cleared): a read of the records
        started at one value may be put in the cache only if it is still current."""
        return self._epoch, self._path_counts[hash(path) & self._path_mask]

    # --- synchronous fast path -------------------------------------------------------------

    def cached_file(self, path: str) -> FileInfo | Missing | None:
        """The local FileInfo (or None = unknown) if cached and fresh, else ``MISSING``."""
        entry = self.files.get(path)
        if entry is MISSING:
            return MISSING
        info, expires = entry
        if info is None and self.clock.seconds() >= expires:
            self.files.pop(path)
            return MISSING
        return info

    def cached_candidates(self, path: str) -> list[tuple[Mirror, FileInfo | None]] | Missing:
        """``[(Mirror, FileInfo|None), ...]`` if everything is cached, else ``MISSING``."""
        ids = self.file_mirrors.get(path)
        if ids is MISSING:
            return MISSING
        mirrors_get = self.mirrors.get
        files_get = self.mirror_files.get
        result: list[tuple[Mirror, FileInfo | None]] = []
        for mirror_id in ids:
            mirror = mirrors_get(mirror_id)
            if mirror is MISSING:
                return MISSING
            info = files_get((mirror_id, path))
            if info is MISSING:
                return MISSING
            result.append((mirror, info))
        return self._as_held(result) if self.held_down.active else result

    def _as_held(self, entries: list[tuple[Mirror, FileInfo | None]],
                 ) -> list[tuple[Mirror, FileInfo | None]]:
        apply = self.held_down.apply
        return [(apply(mirror), info) for mirror, info in entries]

    def held_candidates(self, path: str) -> list[tuple[Mirror, FileInfo | None]] | Missing:
        """What the cache holds of ``path``'s candidates while Redis cannot be read: the
        mirror records put aside (forgotten by a message or a lost pub/sub connection, not
        read again since) serve like the others; a mirror whose record is nowhere in memory is
        left out. ``MISSING`` without the file's mirror list."""
        ids = self.file_mirrors.get(path)
        if ids is MISSING:
            return MISSING
        result: list[tuple[Mirror, FileInfo | None]] = []
        for mirror_id in ids:
            mirror = self.mirrors.get(mirror_id)
            if mirror is MISSING:
                mirror = self._aside.get(mirror_id, MISSING)
            info = self.mirror_files.get((mirror_id, path))
            if mirror is not MISSING and info is not MISSING:
                result.append((mirror, info))
        return self._as_held(result)

    # --- asynchronous reads ----------------------------------------------------------------

    async def file_info(self, path: str) -> FileInfo | None:
        await self._refreshed(path)
        for _ in range(READ_TRIES):
            cached = self.cached_file(path)
            if cached is not MISSING:
                return cached
            if path not in self.file_mirrors:
                await self._read_records(path)
                continue
            # Only FILE_ is missing (a file message, or the unknown file's delay passed).
            version = self.records_version(path)
            info = await read_file(self.get_client(), path)
            if self.records_version(path) == version:
                expires = self.clock.seconds() + self.negative_ttl if info is None else 0.0
                self.files.put(path, (info, expires))
                return info
        return (await read_file_records(self.get_client(), [path]))[0].info

    async def candidates(self, path: str) -> list[tuple[Mirror, FileInfo | None]]:
        """Every mirror holding ``path`` with its info for it, in ``FILEMIRRORS`` order.

        Assembled from the cache at one moment, never from reads made at different ones: a
        file's mirror list and its copies' records come from one read of them all (a copy
        moved meanwhile would otherwise be asked of a mirror that no longer holds it, and
        the mirror left out as holding the wrong size), and nothing read is kept if a
        message about it arrived during the read.
        """
        await self._refreshed(path)
        absent: set[int] = set()  # mirrors of the list that no longer exist
        for _ in range(READ_TRIES):
            assembled = self._assemble(path, absent)
            if assembled is not MISSING:
                return assembled
            ids = self.file_mirrors.peek(path)
            if ids is MISSING or any((i, path) not in self.mirror_files for i in ids):
                await self._read_records(path)
                continue
            wanted = [i for i in ids if i not in self.mirrors and i not in absent]
            found = await gatherResults([Deferred.fromCoroutine(self.mirror(i))
                                         for i in wanted], consumeErrors=True)
            absent.update(i for i, mirror in zip(wanted, found, strict=True) if mirror is None)
        return await self._read_once(path)

    def _assemble(self, path: str,
                  absent: set[int]) -> list[tuple[Mirror, FileInfo | None]] | Missing:
        """:meth:`cached_candidates`, leaving out the mirrors in ``absent``."""
        if not absent:
            return self.cached_candidates(path)
        ids = self.file_mirrors.get(path)
        if ids is MISSING:
            return MISSING
        result: list[tuple[Mirror, FileInfo | None]] = []
        for mirror_id in ids:
            if mirror_id in absent:
                continue
            mirror = self.mirrors.get(mirror_id)
            info = self.mirror_files.get((mirror_id, path))
            if mirror is MISSING or info is MISSING:
                return MISSING
            result.append((mirror, info))
        return self._as_held(result)

    async def _read_once(self, path: str) -> list[tuple[Mirror, FileInfo | None]]:
        """``path``'s candidates from one read of its records, kept nowhere: for a file
        whose records change faster than they can be read and kept."""
        record = (await read_file_records(self.get_client(), [path]))[0]
        mirrors = await gatherResults([Deferred.fromCoroutine(self.mirror(i))
                                       for i in record.mirror_ids], consumeErrors=True)
        return [(mirror, info) for mirror, info in zip(mirrors, record.mirror_infos, strict=True)
                if mirror is not None]

    async def mirror(self, mirror_id: int) -> Mirror | None:
        """A mirror's record (None: no such mirror), as this node sees it (held down)."""
        cached = self.mirrors.get(mirror_id)
        if cached is not MISSING:
            return self.held_down.apply(cached)
        mirror, _ = await self._read_mirror(mirror_id)
        return None if mirror is None else self.held_down.apply(mirror)

    async def _read_mirror(self, mirror_id: int) -> tuple[Mirror | None, bool]:
        """Read a mirror's record from Redis and keep it (:meth:`_mirror_read`); whether no
        message about the mirror came during the read."""
        version = self._mirror_version(mirror_id)
        mirror = await read_mirror(self.get_client(), mirror_id)
        current = self._mirror_version(mirror_id) == version
        self._mirror_read(mirror_id, mirror, current)
        return mirror, current

    def _mirror_read(self, mirror_id: int, mirror: Mirror | None, current: bool) -> None:
        """A read of a mirror's record succeeded: what it found is kept if no message about
        the mirror came meanwhile (``current``; else it is read again next time), and
        replaces the record put aside either way (none: the mirror is gone); a mirror held
        down and since released is no longer held (what Redis says holds)."""
        if mirror is None:
            self._aside.pop(mirror_id, None)
            self.held_down.read(mirror_id)
        elif current:
            self.mirrors.put(mirror_id, mirror)
            self._aside.pop(mirror_id, None)
            self.held_down.read(mirror_id)
        else:
            self._aside[mirror_id] = mirror

    def _mirror_version(self, mirror_id: int) -> tuple[int, int]:
        return self._epoch, self._mirror_versions.get(mirror_id, 0)

    # --- start-up ---------------------------------------------------------------------------

    def holds_anything(self) -> bool:
        return bool(len(self.files) or len(self.file_mirrors) or len(self.mirrors)
                    or len(self.mirror_files))

    def resize(self, files: int) -> None:
        """Bound the cache to ``files`` files (``CacheFiles``): their info and mirror IDs, and
        five times as many file-on-mirror records."""
        self.files.resize(files)
        self.file_mirrors.resize(files)
        self.mirror_files.resize(files * MIRROR_RECORDS_PER_FILE)

    async def warm(self, batch: int = MISS_BATCH) -> int:
        """Fill the cache from Redis before requests ask: every mirror, then the files most
        downloaded first and the rest of the index, ``batch`` files per script (one round
        trip), until the cache is full. Returns how many files were read and kept.

        Call it only once subscribed to the invalidations (pub/sub): a change published
        before would never correct what it read. A file changed (pub/sub) while its batch
        was read is left out (its message reads it again), as is a file no mirror holds (yet:
        its first request reads it, rather than the fill remembering "no mirror" from a moment
        that may already be past) and a file whose mirror records would not fit.

        Files the cache already holds are replaced in place (see :meth:`suspect_all`):
        requests are answered from them meanwhile; those the fill did not reach are dropped.
        """
        client = self.get_client()
        generation = self.generation
        found = [(mid, await read_mirror(client, mid)) for mid in await mirror_ids(client)]
        current = self.generation == generation
        for mirror_id, mirror in found:
            if mirror_id not in self.mirrors:
                self._mirror_read(mirror_id, mirror, current)
        limit = self.files.capacity
        room = self.mirror_files.capacity
        held = {path: self.records_version(path)
                for path in (*self.files.keys(), *self.file_mirrors.keys())}
        seen: set[str] = set()
        seen_records = count = 0
        async for paths in warm_order(client, limit, batch):
            versions = [self.records_version(path) for path in paths]
            records = await read_file_records(self.get_client(), paths)
            for record, version in zip(records, versions, strict=True):
                path = record.path
                seen.add(path)
                seen_records += len(record.mirror_ids)
                if self.records_version(path) != version:
                    continue
                if path in self.files or path in self.file_mirrors:
                    self._replace(record)
                elif (not record.mirror_ids
                        or len(self.mirror_files) + len(record.mirror_ids) > room):
                    continue
                else:
                    self._put_records(record)
                count += 1
            if len(seen) >= limit or seen_records >= room:
                break
        for path, version in held.items():
            if path not in seen and self.records_version(path) == version:
                self._drop(path)  # perhaps changed while pub/sub was away: read on demand
        self.warmed += count
        return count

    # --- batched misses ---------------------------------------------------------------------

    def _read_records(self, path: str) -> Deferred[None]:
        """Fires once ``path``'s records were read and put in the cache, or not put (changed
        during the read: the caller reads again); fails as the read did. A miss of a path
        being read waits for that read;
        others wait while :data:`MISS_READS` batches are read, and go together in the next
        one: no timer."""
        waiters = self._in_flight.get(path)
        if waiters is None:
            waiters = self._misses.setdefault(path, [])
        done: Deferred[None] = Deferred()
        waiters.append(done)
        self._start_reads()
        return done

    def _start_reads(self) -> None:
        while self._misses and self._reading < MISS_READS:
            paths = list(itertools.islice(self._misses,
                                          MISS_BATCH if self.batch_misses else 1))
            waiting = {path: self._misses.pop(path) for path in paths}
            self._in_flight.update(waiting)
            self._reading += 1
            Deferred.fromCoroutine(self._read_batch(waiting))

    async def _read_batch(self, waiting: dict[str, list[Deferred[None]]]) -> None:
        paths = list(waiting)
        versions = [self.records_version(path) for path in paths]
        failure: Failure | None = None
        try:
            records = await read_file_records(self.get_client(), paths)
        except Exception:
            records, failure = [], Failure()  # each request fails on its own
        for record, version in zip(records, versions, strict=False):
            if self.records_version(record.path) == version:  # else read by the next miss
                self._put_records(record)
        for path in paths:
            self._in_flight.pop(path, None)
        self._reading -= 1
        for waiters in waiting.values():
            for done in waiters:
                if failure is None:
                    done.callback(None)
                else:
                    done.errback(failure)
        self._start_reads()

    def _put_records(self, record: FileRecords) -> None:
        path = record.path
        self.files.put(path, (record.info, 0.0 if record.info is not None
                              else self.clock.seconds() + self.negative_ttl))
        self.file_mirrors.put(path, record.mirror_ids)
        for mirror_id, info in zip(record.mirror_ids, record.mirror_infos, strict=True):
            self.mirror_files.put((mirror_id, path), info)

    # --- invalidation (pub/sub) ------------------------------------------------------------

    def on_file_update(self, path: str) -> None:
        if self.refresh_in_background and "\0" not in path and self._whole(path):
            self._refresh(path, LOCAL)
            return
        self.files.pop(path)
        self._bump(path)

    def on_mirror_update(self, message: str) -> None:
        if not _is_int(message):
            return
        mirror_id = int(message)
        held = self.mirrors.peek(mirror_id)
        if held is not MISSING:  # answered from until read again, if Redis cannot be read
            self._aside[mirror_id] = held
        self.mirrors.pop(mirror_id)
        self._mirror_versions[mirror_id] = self._mirror_versions.get(mirror_id, 0) + 1
        self.generation += 1
        for listener in self.mirror_listeners:
            listener(mirror_id)
        if self.read_ahead and mirror_id not in self._mirror_reads:
            self._mirror_reads.add(mirror_id)  # one read at a time (it reads again if moved)
            Deferred.fromCoroutine(self._read_mirror_ahead(mirror_id))

    async def _read_mirror_ahead(self, mirror_id: int) -> None:
        """Read a mirror's record after its message, again while messages come during the
        read; a failure leaves it to the next request (the record put aside serves while Redis
        cannot be read)."""
        try:
            for _ in range(READ_TRIES):
                _, current = await self._read_mirror(mirror_id)
                if current:
                    break
        except Exception as err:
            if outage.redis_cause(err) is None:
                log.failure("Reading mirror {id} after its message failed", id=mirror_id)
        finally:
            self._mirror_reads.discard(mirror_id)

    def on_mirror_file_update(self, message: str) -> None:
        mirror_id, sep, path = message.partition(" ")
        if not sep or not _is_int(mirror_id):
            return
        if self.refresh_in_background and "\0" not in path and self._whole(path):
            self._refresh(path, int(mirror_id))
            return
        self.file_mirrors.pop(path)
        self.mirror_files.pop((int(mirror_id), path))
        self._bump(path)
        if self.read_ahead and self.refresh_in_background and "\0" not in path and (
                self._has_room(1)):
            self._refresh(path, WHOLE)  # a file left out at the fill: a mirror holds it now

    def suspect_all(self) -> None:
        """Pub/sub was away: messages may have been lost. The mirrors are read again (a few
        records), reads in flight are not kept; the files' records stay, and are answered
        from until :meth:`warm` replaces them in place (as if their messages came late),
        rather than every request missing and reading Redis meanwhile."""
        self.generation += 1
        self._epoch += 1
        self._aside.update(self.mirrors.items())
        self.mirrors.clear()
        self._release_refresh_waiters(list(self._refresh_waiters))

    def clear(self) -> None:
        self._clears += 1
        self.generation += 1
        self._epoch += 1
        self._mirror_versions.clear()
        self.files.clear()
        self.file_mirrors.clear()
        self.mirrors.clear()
        self._aside.clear()
        self.mirror_files.clear()
        self._stale.clear()
        self._again.clear()
        self._release_refresh_waiters(list(self._refresh_waiters))

    # --- refresh in the background (pub/sub) -----------------------------------------------

    def _whole(self, path: str) -> bool:
        """Whether the cache holds ``path`` as a known file with its mirror IDs."""
        entry = self.files.peek(path)
        return entry is not MISSING and entry[0] is not None and path in self.file_mirrors

    def _refresh(self, path: str, part: int) -> None:
        """Read ``part`` of ``path``'s records again in the background (:data:`LOCAL`, a
        mirror's ID, or :data:`WHOLE`); until they are back, the request path answers from
        what it had (as it would had the message come a moment later). Messages about a
        path waiting for its read add to that read."""
        if path in self._refreshing:
            self._again.setdefault(path, set()).add(part)  # the read in flight may predate it
            return
        self._stale.setdefault(path, set()).add(part)
        self._start_refreshes()

    def _start_refreshes(self) -> None:
        """Start a re-read of the paths waiting, no sooner than :attr:`refresh_interval`
        after the last one started."""
        while self._stale and self._refresh_reads < REFRESH_READS:
            if self.refresh_interval > 0:
                now = self.clock.seconds()
                if now < self._next_refresh:
                    if self._refresh_call is None:
                        self._refresh_call = self.clock.callLater(
                            self._next_refresh - now, self._paced_refresh)
                    return
                self._next_refresh = now + self.refresh_interval
            paths = list(itertools.islice(self._stale, REFRESH_BATCH))
            asked = [(path, frozenset(self._stale.pop(path))) for path in paths]
            self._refreshing.update(paths)
            self._refresh_reads += 1
            Deferred.fromCoroutine(self._refresh_batch(asked))

    def _paced_refresh(self) -> None:
        self._refresh_call = None
        self._start_refreshes()

    async def _refresh_batch(self, asked: list[tuple[str, frozenset[int]]]) -> None:
        clears = self._clears
        whole = [path for path, parts in asked if WHOLE in parts]
        some = [(path, parts) for path, parts in asked if WHOLE not in parts]
        records: list[FileRecords] = []
        changes: list[FileChange] = []
        failed = False
        try:
            if whole:
                records = await read_file_records(self.get_client(), whole)
            if some:
                changes = await read_file_changes(self.get_client(), some)
        except Exception as err:
            # Redis unreachable: what the cache holds is kept (its reconnection re-reads
            # every held file in place); dropped, each request for these files got a 503
            # for the whole outage. Anything else: dropped, the next request reads it.
            failed = outage.redis_cause(err) is None
        self._refresh_reads -= 1
        # Else cleared meanwhile: nothing to replace. A mirror's message meanwhile (its
        # health, a scan's start) does not make the file's records read here stale, nor do
        # messages about other paths sharing its counter: what was read is newer
        # than what the cache holds, even for a path changed again meanwhile (read again
        # after).
        if clears == self._clears:
            if failed:
                for path, _ in asked:
                    self._drop(path)  # the next request reads it
            for record in records:
                self._take(record)
            for change in changes:
                self._apply(change)
        done = []
        for path, _ in asked:
            self._refreshing.discard(path)
            again = self._again.pop(path, None)
            if again:
                self._stale.setdefault(path, set()).update(again)
            else:
                done.append(path)
        self._release_refresh_waiters(done)
        self._start_refreshes()

    def _apply(self, change: FileChange) -> None:
        """Put what was read of a file in place of what the cache holds; the path's version
        moves only if something differs (a rescan that changed nothing rebuilds nothing).
        A file whose mirror list names a mirror whose record the cache lacks (its own
        message not read yet, or evicted) is read whole."""
        path = change.path
        if not self._whole(path):  # dropped meanwhile: the next request reads it
            return
        changed = False
        if change.local_read:
            entry = self.files.peek(path)
            if entry is MISSING or entry[0] != change.info:
                expires = 0.0 if change.info is not None else (
                    self.clock.seconds() + self.negative_ttl)
                self.files.put(path, (change.info, expires))
                changed = True
        ids = change.mirror_ids
        if ids is not None:
            for mirror_id, info in change.mirror_infos.items():
                if self.mirror_files.peek((mirror_id, path)) != info:
                    self.mirror_files.put((mirror_id, path), info)
                    changed = True
            old_ids = self.file_mirrors.peek(path)
            if old_ids != ids:
                for mirror_id in () if old_ids is MISSING else old_ids:
                    if mirror_id not in ids:
                        self.mirror_files.pop((mirror_id, path))
                self.file_mirrors.put(path, ids)
                changed = True
                # A record evicted from an unchanged list is read by the next request.
                if any((mirror_id, path) not in self.mirror_files for mirror_id in ids):
                    self._refresh(path, WHOLE)
        if changed:
            self._bump(path)

    def _take(self, record: FileRecords) -> None:
        """A file read again whole: in place of what the cache holds (:meth:`_replace`); one it
        does not hold (left out at the fill, or dropped meanwhile) is kept as the fill keeps
        one: indexed, on a mirror, with room for its records (else the next request reads
        it)."""
        path = record.path
        if path in self.files or path in self.file_mirrors:
            self._replace(record)
        elif (record.info is not None and record.mirror_ids
                and self._has_room(len(record.mirror_ids))):
            self._put_records(record)
            self._bump(path)

    def _has_room(self, records: int) -> bool:
        """Whether one more file and ``records`` of its copies fit without evicting any."""
        return (len(self.files) < self.files.capacity
                and len(self.mirror_files) + records <= self.mirror_files.capacity)

    def _replace(self, record: FileRecords) -> None:
        """Put ``record`` in place of what the cache holds; the path's version moves only if
        something differs (a rescan that changed nothing rebuilds nothing)."""
        path = record.path
        entry = self.files.peek(path)
        old_ids = self.file_mirrors.peek(path)
        old_infos = [self.mirror_files.peek((i, path)) for i in record.mirror_ids]
        if (entry is not MISSING and entry[0] == record.info and old_ids == record.mirror_ids
                and old_infos == list(record.mirror_infos)):
            return
        for mirror_id in () if old_ids is MISSING else old_ids:
            if mirror_id not in record.mirror_ids:
                self.mirror_files.pop((mirror_id, path))
        self._put_records(record)
        self._bump(path)

    def _drop(self, path: str) -> None:
        ids = self.file_mirrors.peek(path)
        for mirror_id in () if ids is MISSING else ids:
            self.mirror_files.pop((mirror_id, path))
        self.files.pop(path)
        self.file_mirrors.pop(path)
        self._bump(path)

    async def reread(self, paths: list[str]) -> None:
        """Read ``paths`` again now, as their pub/sub messages would have them read, and
        return once the cache holds what Redis holds (the repository watch, in this process,
        before it releases the requests waiting for them)."""
        for path in paths:
            self.on_file_update(path)
        for path in paths:
            await self._refreshed(path)

    async def _refreshed(self, path: str) -> None:
        """Wait until ``path`` is no longer being refreshed (the asynchronous reads see the
        new records)."""
        if path in self._stale or path in self._refreshing:
            waiter: Deferred[None] = Deferred()
            self._refresh_waiters.setdefault(path, []).append(waiter)
            await waiter

    def _release_refresh_waiters(self, paths: list[str]) -> None:
        for path in paths:
            for waiter in self._refresh_waiters.pop(path, ()):
                waiter.callback(None)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except (TypeError, ValueError):
        return False
    return True
