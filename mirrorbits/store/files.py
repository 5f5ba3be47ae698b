"""Reading what Redis knows of files: the local repository index and the files on mirrors.

``FILE_<path>`` and ``FILES`` (written by the local scan, :mod:`mirrorbits.store.repository`),
``FILEMIRRORS_<path>``, ``FILEINFO_<id>_<path>`` and ``HANDLEDFILES_<id>`` (written by mirror
scans, :mod:`mirrorbits.store.scans`). Replies are decoded here into :class:`FileInfo` values.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen
from twisted.internet.defer import FirstError

from mirrorbits.model import FileInfo
from mirrorbits.store import keys
from mirrorbits.store.bigsets import contained
from mirrorbits.store.client import RedisClient
from mirrorbits.store.records import (
    FILE_FIELDS,
    MIRROR_FILE_FIELDS,
    FileField,
    file_info_from_values,
)

__all__ = [
    "IndexedFile",
    "file_mirror_ids",
    "indexed_file",
    "indexed_paths",
    "is_indexed",
    "random_handled_files",
    "read_file",
    "read_file_pairs",
    "read_files",
    "read_mirror_file",
    "repository_indexed",
]


@frozen
class IndexedFile:
    """A path of the local repository index with its size (``None`` when unreadable)."""

    path: str
    size: int | None


async def read_file(client: RedisClient, path: str) -> FileInfo | None:
    """The local file ``path`` (``HMGET FILE_<path>``); ``None`` when it is not indexed."""
    values = await client.hmget(keys.file(path), list(FILE_FIELDS))
    return file_info_from_values(path, values or ())


async def read_files(client: RedisClient, paths: Sequence[str]) -> list[FileInfo | None]:
    """:func:`read_file` of each path, in one pipelined round trip."""
    if not paths:
        return []
    replies = await _pipelined_hmget(client, [(keys.file(path), FILE_FIELDS) for path in paths])
    return [file_info_from_values(path, values)
            for path, values in zip(paths, replies, strict=True)]


async def read_file_pairs(
    client: RedisClient, mirror_id: int, paths: Sequence[str]
) -> list[tuple[FileInfo | None, FileInfo | None]]:
    """Size and mtime of each path, locally and on the mirror (``None`` where unknown), in
    one pipelined round trip."""
    if not paths:
        return []
    reads: list[tuple[str, Sequence[str]]] = []
    for path in paths:
        reads.append((keys.file(path), MIRROR_FILE_FIELDS))
        reads.append((keys.file_info(mirror_id, path), MIRROR_FILE_FIELDS))
    replies = await _pipelined_hmget(client, reads)
    return [
        (file_info_from_values(path, replies[2 * index], MIRROR_FILE_FIELDS),
         file_info_from_values(path, replies[2 * index + 1], MIRROR_FILE_FIELDS))
        for index, path in enumerate(paths)
    ]


async def _pipelined_hmget(
    client: RedisClient, reads: Sequence[tuple[str, Sequence[str]]]
) -> list[list[str | None]]:
    pipe = await client.pipeline()
    for key, fields in reads:
        pipe.hmget(key, list(fields))
    try:
        replies: list[list[str | None]] = await pipe.execute_pipeline()
    except FirstError as err:
        err.subFailure.raiseException()
    return replies


async def indexed_file(client: RedisClient, path: str) -> IndexedFile | None:
    """``path`` with its size if the local repository index holds it, else ``None``."""
    size = await client.hget(keys.file(path), FileField.SIZE)
    if size is None:
        return None
    return IndexedFile(path, _int_or_none(size))


async def is_indexed(client: RedisClient, path: str) -> bool:
    """Whether ``path`` is part of the local repository index."""
    return bool(int(await client.exists(keys.file(path))))


async def indexed_paths(client: RedisClient, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` that are part of the local repository (``FILES``), in batches."""
    return await contained(client, keys.FILES, paths)


async def repository_indexed(client: RedisClient) -> bool:
    """Whether a local scan has indexed the repository (``FILES`` exists)."""
    return bool(await client.exists(keys.FILES))


async def file_mirror_ids(client: RedisClient, path: str) -> tuple[int, ...]:
    """The IDs of the mirrors holding ``path`` (``FILEMIRRORS_<path>``), sorted."""
    members = await client.smembers(keys.file_mirrors(path))
    return tuple(sorted(int(m) for m in members if _is_int(m)))


async def read_mirror_file(client: RedisClient, mirror_id: int, path: str) -> FileInfo | None:
    """``path`` as mirror ``mirror_id`` holds it (``FILEINFO_<id>_<path>``); ``None`` when
    unknown."""
    values = await client.hmget(keys.file_info(mirror_id, path), list(FILE_FIELDS))
    return file_info_from_values(path, values or ())


async def random_handled_files(client: RedisClient, mirror_id: int, count: int) -> list[str]:
    """At most ``count`` distinct random paths of ``HANDLEDFILES_<id>``: files the mirror held
    at its last scan that were also in the local repository."""
    drawn = await client.execute_command("SRANDMEMBER", keys.handled_files(mirror_id),
                                         str(count))
    return [_text(member) for member in drawn or ()]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int_or_none(value: object) -> int | None:
    try:
        return int(_text(value))
    except ValueError:
        return None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except (TypeError, ValueError):
        return False
    return True
