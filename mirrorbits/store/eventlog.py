"""Appending to a mirror's event log ``MIRRORLOGS_<id>`` (spec §13), bounded.

The reference RPUSHes forever (§20.23): a mirror that flaps for years grows its list without
end. Here the list keeps its last :data:`MAX_ENTRIES` entries; ``logs`` reads 500 by default.
The trim costs a second command only when an append took the list past the bound.
"""

from __future__ import annotations

from typing import Final

from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient

#: Entries kept per mirror (about 100 bytes each).
MAX_ENTRIES: Final = 10_000


async def append_event(client: RedisClient, mirror_id: int, event: str) -> None:
    """RPUSH ``event`` (JSON text, :mod:`mirrorbits.store.events`), then drop the oldest
    entries beyond :data:`MAX_ENTRIES`."""
    key = keys.mirror_logs(mirror_id)
    length = await client.rpush(key, event)
    if length > MAX_ENTRIES:
        await client.ltrim(key, -MAX_ENTRIES, -1)
