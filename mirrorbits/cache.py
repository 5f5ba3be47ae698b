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
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Generic, Literal, TypeVar

from attrs import define, field
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime

from mirrorbits.model import FileInfo, Mirror
from mirrorbits.store.client import RedisClient
from mirrorbits.store.files import file_mirror_ids, read_file, read_mirror_file
from mirrorbits.store.mirrors import read_mirror

K = TypeVar("K")
V = TypeVar("V")



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

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[K]:
        return list(self._data)




@define(eq=False)
class MirrorCache:
    """Read-through cache in front of Redis for the request path."""

    get_client: Callable[[], RedisClient]
    clock: IReactorTime
    negative_ttl: float = 2.0
    files: LRU[str, tuple[FileInfo | None, float]] = field(factory=lambda: LRU(200_000))
    file_mirrors: LRU[str, tuple[int, ...]] = field(factory=lambda: LRU(200_000))
    mirrors: LRU[int, Mirror] = field(factory=lambda: LRU(10_000))
    mirror_files: LRU[tuple[int, str], FileInfo | None] = field(factory=lambda: LRU(1_000_000))
    mirror_listeners: list[Callable[[int], None]] = field(factory=list)
    generation: int = 0  # bumped by invalidations that may concern any path
    path_versions_limit: int = 100_000
    _path_versions: dict[str, int] = field(factory=dict)

    def version(self, path: str) -> tuple[int, int]:
        """What the cache knows of ``path``, as a value that changes whenever that may change.

        Results derived from cached data (a file's prefiltered mirrors...) are valid while
        the version they were computed at is current. A file's own messages only change its
        version; a mirror's change or a reconnection changes every path's.
        """
        return self.generation, self._path_versions.get(path, 0)

    def _bump(self, path: str) -> None:
        versions = self._path_versions
        if len(versions) >= self.path_versions_limit:
            versions.clear()  # counters restart: the global bump keeps old versions stale
            self.generation += 1
        versions[path] = versions.get(path, 0) + 1

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
        return result

    # --- asynchronous reads ----------------------------------------------------------------

    async def file_info(self, path: str) -> FileInfo | None:
        cached = self.cached_file(path)
        if cached is not MISSING:
            return cached
        info = await read_file(self.get_client(), path)
        expires = self.clock.seconds() + self.negative_ttl if info is None else 0.0
        self.files.put(path, (info, expires))
        return info

    async def candidates(self, path: str) -> list[tuple[Mirror, FileInfo | None]]:
        """Every mirror holding ``path`` with its info for it, in ``FILEMIRRORS`` order."""
        cached = self.cached_candidates(path)
        if cached is not MISSING:
            return cached
        ids = self.file_mirrors.get(path)
        if ids is MISSING:
            ids = await file_mirror_ids(self.get_client(), path)
            self.file_mirrors.put(path, ids)
        pairs: list[Deferred[tuple[Mirror, FileInfo | None] | None]] = []
        for mirror_id in ids:
            pairs.append(Deferred.fromCoroutine(self._pair(mirror_id, path)))
        results = await gatherResults(pairs, consumeErrors=True)
        return [pair for pair in results if pair is not None]

    async def _pair(self, mirror_id: int, path: str) -> tuple[Mirror, FileInfo | None] | None:
        mirror = await self.mirror(mirror_id)
        if mirror is None:
            return None
        info = self.mirror_files.get((mirror_id, path))
        if info is MISSING:
            info = await read_mirror_file(self.get_client(), mirror_id, path)
            self.mirror_files.put((mirror_id, path), info)
        return mirror, info

    async def mirror(self, mirror_id: int) -> Mirror | None:
        cached = self.mirrors.get(mirror_id)
        if cached is not MISSING:
            return cached
        mirror = await read_mirror(self.get_client(), mirror_id)
        if mirror is None:
            return None
        self.mirrors.put(mirror_id, mirror)
        return mirror

    # --- invalidation (pub/sub) ------------------------------------------------------------

    def on_file_update(self, path: str) -> None:
        self.files.pop(path)
        self._bump(path)

    def on_mirror_update(self, message: str) -> None:
        if not _is_int(message):
            return
        mirror_id = int(message)
        self.mirrors.pop(mirror_id)
        self.generation += 1
        for listener in self.mirror_listeners:
            listener(mirror_id)

    def on_mirror_file_update(self, message: str) -> None:
        mirror_id, sep, path = message.partition(" ")
        if not sep or not _is_int(mirror_id):
            return
        self.file_mirrors.pop(path)
        self.mirror_files.pop((int(mirror_id), path))
        self._bump(path)

    def clear(self) -> None:
        self.generation += 1
        self._path_versions.clear()
        self.files.clear()
        self.file_mirrors.clear()
        self.mirrors.clear()
        self.mirror_files.clear()


def _is_int(text: str) -> bool:
    try:
        int(text)
    except (TypeError, ValueError):
        return False
    return True
