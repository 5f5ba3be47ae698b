"""Forgetting one file on one mirror when a check finds it gone (docs/freshness.md)."""

from __future__ import annotations

from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient
from mirrorbits.store.commands import transaction
from mirrorbits.store.scans import mirror_file_removals

__all__ = ["drop_mirror_file"]


async def drop_mirror_file(client: RedisClient, mirror_id: int, path: str) -> None:
    """One MULTI/EXEC: ``path`` leaves ``FILEMIRRORS_<path>``, ``MIRRORFILES_<id>`` and
    ``HANDLEDFILES_<id>``, its ``FILEINFO_<id>_<path>`` is deleted, and the change is published
    on ``_mirrorbits_mirror_file_update`` (the caches stop choosing the mirror for it). A scan
    that lists the file again records it again."""
    await transaction(client, [
        ("SREM", keys.mirror_files(mirror_id), path),
        ("SREM", keys.handled_files(mirror_id), path),
        *mirror_file_removals(mirror_id, [path]),
    ])
