"""What a cold cache reads at start-up: the files in the order they are worth caching, and
each file's records (local info, mirror IDs, info on each mirror) for a batch of files in two
pipelined round trips."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence
from typing import Any

from attrs import frozen
from twisted.internet.defer import FirstError

from mirrorbits.model import FileInfo
from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient, RedisPipeline
from mirrorbits.store.records import FILE_FIELDS, file_info_from_values

__all__ = ["FileRecords", "popular_paths", "read_file_records", "warm_order"]

PAGE = 1000


@frozen
class FileRecords:
    """Everything the request path reads of one file: ``FILE_<path>`` (``None``: not
    indexed), ``FILEMIRRORS_<path>`` (sorted) and ``FILEINFO_<id>_<path>`` of each of them."""

    path: str
    info: FileInfo | None
    mirror_ids: tuple[int, ...]
    mirror_infos: tuple[FileInfo | None, ...]


async def popular_paths(client: RedisClient, limit: int, page: int = PAGE) -> list[str]:
    """The ``limit`` most downloaded paths of all time (``STATS_FILE``, read ``page`` fields
    at a time with ``HSCAN``), most downloaded first."""
    if limit <= 0:
        return []
    top: list[tuple[int, str]] = []
    cursor = "0"
    while True:
        reply = await client.execute_command("HSCAN", keys.STATS_FILE, cursor, "COUNT",
                                             str(page))
        cursor, flat = str(reply[0]), reply[1]
        for index in range(0, len(flat) - 1, 2):
            try:
                count = int(flat[index + 1])
            except (TypeError, ValueError):
                continue
            entry = (count, str(flat[index]))
            if len(top) < limit:
                heapq.heappush(top, entry)
            elif entry > top[0]:
                heapq.heapreplace(top, entry)
        if cursor == "0":
            break
    return [path for _, path in sorted(top, reverse=True)]


async def warm_order(client: RedisClient, limit: int,
                     page: int = PAGE) -> AsyncIterator[list[str]]:
    """Pages of at most ``page`` distinct paths worth caching, at most ``limit`` in all: the
    most downloaded first, then the rest of the local repository index (``SSCAN FILES``)."""
    given: set[str] = set()
    popular = await popular_paths(client, limit, page)
    for start in range(0, len(popular), page):
        chunk = popular[start:start + page]
        given.update(chunk)
        yield chunk
    if len(given) >= limit:
        return
    cursor = "0"
    while True:
        reply = await client.execute_command("SSCAN", keys.FILES, cursor, "COUNT", str(page))
        cursor = str(reply[0])
        chunk = [str(path) for path in reply[1] if path not in given]
        chunk = chunk[:limit - len(given)]
        given.update(chunk)
        if chunk:
            yield chunk
        if cursor == "0" or len(given) >= limit:
            return


async def read_file_records(client: RedisClient, paths: Sequence[str]) -> list[FileRecords]:
    """:class:`FileRecords` of each path: one pipeline for the files and their mirror IDs,
    one for their info on each mirror."""
    if not paths:
        return []
    pipe = await client.pipeline()
    for path in paths:
        pipe.hmget(keys.file(path), list(FILE_FIELDS))
        pipe.smembers(keys.file_mirrors(path))
    first = await _execute(pipe)
    infos = [file_info_from_values(path, first[2 * index] or ())
             for index, path in enumerate(paths)]
    id_lists = [tuple(sorted(int(m) for m in first[2 * index + 1] or () if _is_int(m)))
                for index in range(len(paths))]
    second: list[Any] = []
    if any(id_lists):  # a pipeline opened must be executed: the connection waits for it
        pipe = await client.pipeline()
        for path, ids in zip(paths, id_lists, strict=True):
            for mirror_id in ids:
                pipe.hmget(keys.file_info(mirror_id, path), list(FILE_FIELDS))
        second = await _execute(pipe)
    records: list[FileRecords] = []
    position = 0
    for path, info, ids in zip(paths, infos, id_lists, strict=True):
        values = second[position:position + len(ids)]
        position += len(ids)
        records.append(FileRecords(path, info, ids, tuple(
            file_info_from_values(path, v or ()) for v in values)))
    return records


async def _execute(pipe: RedisPipeline) -> list[Any]:
    try:
        replies: list[Any] = await pipe.execute_pipeline()
    except FirstError as err:
        err.subFailure.raiseException()
    return replies


def _is_int(text: object) -> bool:
    try:
        int(str(text))
    except ValueError:
        return False
    return True
