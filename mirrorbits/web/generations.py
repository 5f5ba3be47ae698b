"""The generation indexes covering a file, read through the cache (``GenerationIndexes``).

Read when a file's memo is computed (never per request): the origin's record of each index
and every mirror's recorded copy, with the cache version of each index path before the reads,
so the memo is recomputed once the watcher, a scan or a freshness check changes one of them
(the same pub/sub messages that keep the cache fresh).
"""

from __future__ import annotations

from mirrorbits.cache import MISSING, MirrorCache
from mirrorbits.selection import IndexCopies

IndexVersions = tuple[tuple[str, tuple[int, int]], ...]
# The indexes covering a file and the cache versions they were read at.
IndexView = tuple[tuple[IndexCopies, ...], IndexVersions]


def indexes_in_memory(cache: MirrorCache, paths: tuple[str, ...]) -> IndexView | None:
    """Each index of ``paths`` as the cache holds it now, or None when one is not in memory."""
    indexes = []
    for path in paths:
        origin = cache.cached_file(path)
        if origin is MISSING:
            return None
        copies = {}
        if origin is not None:
            pairs = cache.cached_candidates(path)
            if pairs is MISSING:
                return None
            copies = {mirror.id: info for mirror, info in pairs}
        indexes.append(IndexCopies(path, origin, copies))
    return tuple(indexes), tuple((path, cache.version(path)) for path in paths)


async def read_indexes(cache: MirrorCache, paths: tuple[str, ...]) -> IndexView:
    """Each index of ``paths`` (origin and mirrors' copies) and the versions it was read at."""
    versions = tuple((path, cache.version(path)) for path in paths)
    indexes = []
    for path in paths:
        origin = await cache.file_info(path)
        copies = {} if origin is None else {
            mirror.id: info for mirror, info in await cache.candidates(path)}
        indexes.append(IndexCopies(path, origin, copies))
    return tuple(indexes), versions
