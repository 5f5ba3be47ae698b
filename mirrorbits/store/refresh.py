"""What a cache re-reads of a file after pub/sub messages about it: only what the messages
name (``FILE_<path>`` for ``_mirrorbits_file_update``; for ``_mirrorbits_mirror_file_update
<id> <path>``, the file's mirror IDs and ``FILEINFO_<id>_<path>``), for a batch of files in
one script; an invalidation storm then costs one or two records per message, not a file's
every copy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import frozen

from mirrorbits.model import FileInfo
from mirrorbits.store.client import RedisClient
from mirrorbits.store.filescript import eval_file_script, local_info, mirror_info

__all__ = ["LOCAL", "FileChange", "read_file_changes"]

#: The part of a file named by ``_mirrorbits_file_update``: its ``FILE_`` hash.
LOCAL = 0

_NOT_READ = "\1"

# One reply string per file: FILE_'s fields (or \1: not asked), then the file's mirror IDs
# (or \1), then "id, size, modTime" of each asked mirror that holds it.
# (After filescript.SCRIPT_HEAD.)
_READ_CHANGES = """
local out = {}
for i = 7, #ARGV - 1, 2 do
  local path, local_part, asked = ARGV[i], '\1', {}
  for token in string.gmatch(ARGV[i + 1], '%S+') do
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
return out
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
    args: list[str] = []
    for path, parts in asked:
        args += [path, " ".join(map(str, sorted(parts)))]
    rows = await eval_file_script(client, _READ_CHANGES, args)
    changes = []
    for (path, _), row in zip(asked, rows, strict=True):
        local_part, ids_part, *copies = row.split("\30")
        local_read = local_part != _NOT_READ
        info = local_info(path, local_part) if local_read else None
        mirror_ids = None
        if ids_part != _NOT_READ:
            mirror_ids = tuple(sorted(int(i) for i in ids_part.split() if i.isdigit()))
        infos: dict[int, FileInfo | None] = {}
        for copy in copies:
            mirror_id, _, values = copy.partition("\31")
            if mirror_id.isdigit():
                infos[int(mirror_id)] = mirror_info(path, values)
        changes.append(FileChange(path, local_read, info, mirror_ids, infos))
    return changes

