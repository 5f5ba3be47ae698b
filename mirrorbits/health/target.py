"""Choosing the file a health check asks a mirror for (fixes reference bug §20.12)."""

from __future__ import annotations

from attrs import frozen

from mirrorbits.store.client import RedisClient
from mirrorbits.store.files import indexed_file, is_indexed, random_handled_files

CANDIDATES = 5  # files drawn from HANDLEDFILES at once


@frozen
class Target:
    """A file the mirror held at its last scan and that still exists locally."""

    path: str
    size: int | None


async def pick_target(client: RedisClient, mirror_id: int, exclude: str = "") -> Target | None:
    """A random file of ``HANDLEDFILES_<id>`` still present in the local repository.

    ``None`` when the mirror has no such file (never scanned, or all drawn files were
    deleted locally since its scan): the caller checks again at the next interval.
    """
    for path in await random_handled_files(client, mirror_id, CANDIDATES):
        if path == exclude:
            continue
        found = await indexed_file(client, path)
        if found is not None:
            return Target(found.path, found.size)
    return None


async def still_exists(client: RedisClient, path: str) -> bool:
    """Whether ``path`` is still part of the local repository."""
    return await is_indexed(client, path)
