"""What a cold cache reads at start-up: the files in the order they are worth caching, and
each file's records (local info, mirror IDs, info on each mirror) for a batch of files in one
script."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence

from attrs import frozen

from mirrorbits.model import FileInfo
from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient
from mirrorbits.store.filescript import eval_file_script, local_info, mirror_info

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


# One file per reply string: its FILE_ fields, then one "id, size, modTime" per mirror, so
# that a batch of files with their 27 mirrors each is parsed as a few hundred strings and
# split in C, rather than as tens of thousands of bulk replies (after filescript.SCRIPT_HEAD).
_READ_RECORDS = """
local out = {}
for i = 7, #ARGV do
  local path = ARGV[i]
  local row = {joined(redis.call('HMGET', file_prefix .. path, unpack(file_fields)),
                      #file_fields)}
  for _, id in ipairs(redis.call('SMEMBERS', mirrors_prefix .. path)) do
    local values = redis.call('HMGET', info_prefix .. id .. info_sep .. path,
                              unpack(info_fields))
    row[#row + 1] = id .. '\31' .. joined(values, #info_fields)
  end
  out[#out + 1] = table.concat(row, '\30')
end
return out
"""


async def read_file_records(client: RedisClient, paths: Sequence[str]) -> list[FileRecords]:
    """:class:`FileRecords` of each path, read by one script (``FILE_``, ``FILEMIRRORS_``
    and each ``FILEINFO_``); keep batches small (the script blocks Redis for 3 to 8 us per
    file-on-mirror record: 50 files on 27 mirrors each, 4 to 11 ms)."""
    if not paths:
        return []
    rows = await eval_file_script(client, _READ_RECORDS, paths)
    records = []
    for path, row in zip(paths, rows, strict=True):
        file_part, *mirror_parts = row.split("\30")
        info = local_info(path, file_part)
        found = []
        # The copies of a file mostly agree: one FileInfo per distinct (size, modTime), shared
        # (parsed once, held once).
        parsed: dict[str, FileInfo | None] = {}
        for part in mirror_parts:
            mirror_id, _, values = part.partition("\31")
            if _is_int(mirror_id):
                if values not in parsed:
                    parsed[values] = mirror_info(path, values)
                found.append((int(mirror_id), parsed[values]))
        found.sort(key=lambda pair: pair[0])
        records.append(FileRecords(path, info, tuple(i for i, _ in found),
                                   tuple(f for _, f in found)))
    return records


def _is_int(text: object) -> bool:
    try:
        int(str(text))
    except ValueError:
        return False
    return True
