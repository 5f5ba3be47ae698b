"""Deleting old download counters (``StatsRetention``), one bounded step at a time.

A step continues a ``SCAN`` of the ``STATS_*`` keys from a cursor, and removes those the
caller says are expired, :data:`DELETE_BATCH` keys per command (``UNLINK``, or ``DEL`` before
Redis 4). Deleting a key that is already gone is harmless: nodes may do it at once.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import frozen

from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient

__all__ = ["DELETE_BATCH", "SCAN_COUNT", "RetentionStep", "delete_expired_stats"]

#: Keys looked at by one ``SCAN`` (a hint to Redis).
SCAN_COUNT = 1000
#: Keys removed by one command.
DELETE_BATCH = 250


@frozen
class RetentionStep:
    """Where the ``SCAN`` is (``"0"``: the pass is over), and how many keys went."""

    cursor: str
    seen: int
    deleted: int


async def delete_expired_stats(client: RedisClient, cursor: str,
                               expired: Callable[[str], bool], *,
                               unlink: bool = True) -> RetentionStep:
    """One ``SCAN`` step from ``cursor`` (``"0"`` starts a pass), expired keys deleted."""
    next_cursor, found = await client.scan(cursor, keys.STATS_PATTERN, SCAN_COUNT)
    doomed = sorted({key for key in found if expired(key)})
    deleted = 0
    command = "UNLINK" if unlink else "DEL"
    for start in range(0, len(doomed), DELETE_BATCH):
        deleted += int(await client.execute_command(command, *doomed[start:start + DELETE_BATCH]))
    return RetentionStep(cursor=str(next_cursor), seen=len(found), deleted=deleted)
