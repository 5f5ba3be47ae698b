"""One file on one mirror, as a check finds it: gone (a health check) or holding the origin's
new version (the targeted freshness check); see docs/freshness.md."""

from __future__ import annotations

from mirrorbits.encoding import format_go_time
from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient
from mirrorbits.store.commands import transaction
from mirrorbits.store.records import FileField
from mirrorbits.store.scans import mirror_file_removals

__all__ = ["drop_mirror_file", "record_mirror_file"]


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


async def record_mirror_file(client: RedisClient, mirror_id: int, path: str, size: int,
                             mod_time_ns: int) -> None:
    """One MULTI/EXEC: ``path`` joins ``MIRRORFILES_<id>``, ``HANDLEDFILES_<id>`` and
    ``FILEMIRRORS_<path>``, its ``FILEINFO_<id>_<path>`` is written as a scan would, and the
    change is published on ``_mirrorbits_mirror_file_update`` (the caches take the mirror for
    the file again at once)."""
    member = str(mirror_id)
    await transaction(client, [
        ("SADD", keys.mirror_files(mirror_id), path),
        ("SADD", keys.handled_files(mirror_id), path),
        ("SADD", keys.file_mirrors(path), member),
        ("HMSET", keys.file_info(mirror_id, path), FileField.SIZE, str(size),
         FileField.MOD_TIME, format_go_time(mod_time_ns)),
        ("PUBLISH", keys.CHANNEL_MIRROR_FILE_UPDATE, keys.mirror_file_update(mirror_id, path)),
    ])
