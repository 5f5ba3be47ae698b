"""Reading files' records in one Lua script, the way both the cold cache
(:mod:`mirrorbits.store.warmup`) and the pub/sub re-reads (:mod:`mirrorbits.store.refresh`)
do: the key prefixes and field names go in as the script's first six arguments, and each
hash read comes back as one string, its values joined by ``\\31`` (``\\0``: missing), so
that a batch is parsed as a few strings split in C rather than as many bulk replies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mirrorbits.model import FileInfo
from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient
from mirrorbits.store.records import FILE_FIELDS, MIRROR_FILE_FIELDS, file_info_from_values

__all__ = ["SCRIPT_HEAD", "eval_file_script", "local_info", "mirror_info"]

#: The start of every such script: the prefixes, the field lists, and ``joined(values,
#: count)``, the values of one ``HMGET`` as one string.
SCRIPT_HEAD = """
local file_prefix, mirrors_prefix, info_prefix, info_sep = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local file_fields, info_fields = {}, {}
for name in string.gmatch(ARGV[5], '%S+') do file_fields[#file_fields + 1] = name end
for name in string.gmatch(ARGV[6], '%S+') do info_fields[#info_fields + 1] = name end
local function joined(values, count)
  local parts = {}
  for i = 1, count do parts[i] = values[i] or '\0' end
  return table.concat(parts, '\31')
end
"""

_MISSING = "\0"


async def eval_file_script(client: RedisClient, body: str, args: Sequence[str]) -> Any:
    """Run :data:`SCRIPT_HEAD` followed by ``body``, ``args`` from ``ARGV[7]`` on; its reply
    (what ``body`` returns: a list of strings, or one string)."""
    info_prefix, info_sep, _ = keys.file_info("\0", "\0").split("\0")
    return await client.execute_command(
        "EVAL", SCRIPT_HEAD + body, "0", keys.file(""), keys.file_mirrors(""), info_prefix,
        info_sep, " ".join(FILE_FIELDS), " ".join(MIRROR_FILE_FIELDS), *args)


def local_info(path: str, joined: str) -> FileInfo | None:
    """``FILE_<path>`` from its joined values (``None``: not indexed)."""
    return file_info_from_values(path, _values(joined))


def mirror_info(path: str, joined: str) -> FileInfo | None:
    """``FILEINFO_<id>_<path>`` from its joined values."""
    return file_info_from_values(path, _values(joined), MIRROR_FILE_FIELDS)


def _values(text: str) -> list[str | None]:
    return [None if value == _MISSING else value for value in text.split("\31")]
