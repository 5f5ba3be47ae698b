"""Operations on sets that may hold a million members, without stalling Redis.

``SDIFF``, ``SINTERSTORE`` and replacing a set with ``RENAME`` each run as one
command over the whole set: on a million-member set they block every other
client for hundreds of milliseconds. These helpers do the same work in small
steps: ``SSCAN`` pages, ``SMISMEMBER`` batches, and swaps whose old value is freed
in the background (``UNLINK``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from mirrorbits.store.client import RedisClient
from mirrorbits.store.commands import batches, transaction

PAGE: Final = 1000


async def members(client: RedisClient, key: str, page: int = PAGE) -> set[str]:
    """Every member of the set ``key``, read ``page`` at a time."""
    found: set[str] = set()
    cursor = "0"
    while True:
        reply = await client.execute_command("SSCAN", key, cursor, "COUNT", str(page))
        cursor, chunk = str(reply[0]), reply[1]
        found.update(chunk)
        if cursor == "0":
            return found


async def contained(client: RedisClient, key: str, candidates: Sequence[str],
                    batch: int = PAGE) -> list[str]:
    """The ``candidates`` that are members of ``key``, asked ``batch`` at a time."""
    kept: list[str] = []
    for chunk in batches(candidates, batch):
        try:
            flags = await client.execute_command("SMISMEMBER", key, *chunk)
        except Exception:  # Redis < 6.2: one SISMEMBER per member, in one transaction
            flags = await transaction(client, [("SISMEMBER", key, m) for m in chunk])
        kept.extend(m for m, flag in zip(chunk, flags, strict=True) if int(flag))
    return kept


async def fill(client: RedisClient, key: str, values: Iterable[str], batch: int = PAGE) -> None:
    """``DEL key`` then ``SADD`` the values, ``batch`` per command."""
    await client.delete(key)
    for chunk in batches(list(values), batch):
        await client.execute_command("SADD", key, *chunk)


#: ``replace``'s moves, checked and made in one step: a key deleted meanwhile by another
#: writer (the last file of a mirror dropped as lost, during its scan) is simply absent,
#: where a check then a transaction failed with ``ERR no such key``.
_REPLACE = """
local old = redis.call('EXISTS', KEYS[1])
if old == 1 then redis.call('RENAME', KEYS[1], KEYS[3]) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[1]) end
return old
"""


async def replace(client: RedisClient, target: str, source: str, scratch: str) -> None:
    """Make ``source`` the new ``target`` atomically; the old value is freed lazily.

    ``RENAME source target`` would free the old ``target`` inline. Instead, in one step
    (:data:`_REPLACE`), the old value moves aside to ``scratch``, which is then ``UNLINK``ed
    (``DEL`` on Redis older than 4.0).
    """
    old = int(await client.execute_command("EVAL", _REPLACE, 3, target, source, scratch))
    if old:
        try:
            await client.execute_command("UNLINK", scratch)
        except Exception:
            await client.delete(scratch)
