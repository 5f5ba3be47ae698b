"""The generation indexes covering a file, read through the cache (``GenerationIndexes``).

Read when a file's memo is computed (never per request): the origin's record of each index
and every mirror's recorded copy, with the cache version of each index path before the reads,
so the memo is recomputed once the watcher, a scan or a freshness check changes one of them
(the same pub/sub messages that keep the cache fresh).
"""

from __future__ import annotations

from mirrorbits.cache import MirrorCache
from mirrorbits.selection import IndexCopies

IndexVersions = tuple[tuple[str, tuple[int, int]], ...]


async def read_indexes(cache: MirrorCache, paths: tuple[str, ...]
                       ) -> tuple[tuple[IndexCopies, ...], IndexVersions]:
    """Each index of ``paths`` (origin and mirrors' copies) and the versions it was read at."""
    versions = tuple((path, cache.version(path)) for path in paths)
    indexes = []
    for path in paths:
        origin = await cache.file_info(path)
        copies = {} if origin is None else {
            mirror.id: info for mirror, info in await cache.candidates(path)}
        indexes.append(IndexCopies(path, origin, copies))
    return tuple(indexes), versions
