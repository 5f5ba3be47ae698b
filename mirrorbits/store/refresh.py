"""What a cache re-reads of a file after pub/sub messages about it: only what the messages
name (``FILE_<path>`` for ``_mirrorbits_file_update``; for ``_mirrorbits_mirror_file_update
<id> <path>``, the file's mirror IDs and ``FILEINFO_<id>_<path>``), for a batch of files in
one script; an invalidation storm then costs one or two records per message, not a file's
every copy."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from attrs import frozen

from mirrorbits.encoding import decode_int, parse_go_time
from mirrorbits.model import FileInfo
from mirrorbits.store.client import RedisClient
from mirrorbits.store.filescript import eval_file_script
from mirrorbits.store.records import FILE_FIELDS

__all__ = ["LOCAL", "FileChange", "read_file_changes"]

#: The part of a file named by ``_mirrorbits_file_update``: its ``FILE_`` hash.
LOCAL = 0

_NOT_READ = "\1"
_MISSING = "\0"

# Asked: one argument, each path and its parts ("0 12 31") ended by a NUL. Replied: one
# string, a row per file, rows separated by \35: FILE_'s fields (or \1: not asked), then the
# file's mirror IDs (or \1), then "id, size, modTime" of each asked mirror that holds it.
# One argument and one string, not arrays of them: txredisapi encodes each argument on its
# own, and its parser takes a reactor turn and a copy of the rest of the reply for every
# string of an array.
# (After filescript.SCRIPT_HEAD.)
_READ_CHANGES = """
local items, out = {}, {}
for item in string.gmatch(ARGV[7], '([^%z]*)%z') do items[#items + 1] = item end
for i = 1, #items - 1, 2 do
  local path, local_part, asked = items[i], '\1', {}
  for token in string.gmatch(items[i + 1], '%S+') do
    if token == '0' then
      local_part = joined(redis.call('HMGET', file_prefix .. path, unpack(file_fields)),
                          #file_fields)
    else
      asked[#asked + 1] = token
    end
  end
  local row = {local_part, '\1'}
  if #asked > 0 then
    local mirrors_key = mirrors_prefix .. path
    row[2] = table.concat(redis.call('SMEMBERS', mirrors_key), ' ')
    for _, id in ipairs(asked) do
      if redis.call('SISMEMBER', mirrors_key, id) == 1 then
        local values = redis.call('HMGET', info_prefix .. id .. info_sep .. path,
                                  unpack(info_fields))
        row[#row + 1] = id .. '\31' .. joined(values, #info_fields)
      end
    end
  end
  out[#out + 1] = table.concat(row, '\30')
end
return table.concat(out, '\35')
"""


@frozen
class FileChange:
    """What was read of one file: ``info`` (``FILE_``; ``None``: not indexed) if asked,
    its mirror IDs (sorted) and the records of the asked mirrors that hold it, if any was
    asked (a mirror asked and absent from ``mirror_infos`` no longer holds it)."""

    path: str
    local_read: bool
    info: FileInfo | None
    mirror_ids: tuple[int, ...] | None
    mirror_infos: Mapping[int, FileInfo | None]


async def read_file_changes(client: RedisClient,
                            asked: Sequence[tuple[str, frozenset[int]]]) -> list[FileChange]:
    """For each ``(path, parts)``: ``FILE_`` if ``parts`` holds :data:`LOCAL`, and the
    file's mirror IDs with the records of the mirrors (IDs) in ``parts``; one script."""
    if not asked:
        return []
    if any("\0" in path for path, _ in asked):
        raise ValueError("a path with a NUL")
    args = "".join(f"{path}\0{' '.join(map(str, parts))}\0" for path, parts in asked)
    reply: str = await eval_file_script(client, _READ_CHANGES, [args])
    changes = []
    rows = reply.split("\35")
    if len(rows) != len(asked):
        raise ValueError(f"{len(rows)} rows read for {len(asked)} files")
    for (path, _), row in zip(asked, rows, strict=True):
        local_part, ids_part, *copies = row.split("\30")
        local_read = local_part != _NOT_READ
        info = _file_info(path, local_part) if local_read else None
        mirror_ids = None
        if ids_part != _NOT_READ:
            mirror_ids = _ids(ids_part)
        infos: dict[int, FileInfo | None] = {}
        for copy in copies:
            mirror_id, _, values = copy.partition("\31")
            if mirror_id.isdigit():
                infos[int(mirror_id)] = _file_info(path, values)
        changes.append(FileChange(path, local_read, info, mirror_ids, infos))
    return changes


def _file_info(path: str, text: str) -> FileInfo | None:
    """The record whose fields (those of ``FILE_``, or the first two for a copy) ``text``
    joins; ``None`` if none is stored. Read as :func:`file_info_from_values` reads them."""
    values: list[str | None] = [None if value == _MISSING else value
                                for value in text.split("\31")]
    if all(value is None for value in values):
        return None
    values += [None] * (len(FILE_FIELDS) - len(values))
    size, mod_time, sha1, sha256, md5 = values[:len(FILE_FIELDS)]
    return FileInfo(path, decode_int(size), _go_time(mod_time), sha1 or "", sha256 or "",
                    md5 or "")


#: A file's copies, and the files of a release, mostly share their time: parsed once.
_go_time = functools.lru_cache(maxsize=1024)(parse_go_time)


def _ids(text: str) -> tuple[int, ...]:
    try:
        return tuple(sorted(map(int, text.split())))
    except ValueError:  # not only IDs: those that are
        return tuple(sorted(int(i) for i in text.split() if i.isdigit()))

