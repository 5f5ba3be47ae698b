"""Small helpers over the txredisapi client: transactions, gathering, SCAN, batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, FirstError, gatherResults

from mirrorbits.store.client import RedisClient, RedisTransaction, Value
from mirrorbits.store.errors import StoreError

MAX_SCAN_ROUNDS = 10_000_000  # a bound only: SCAN ends when its cursor comes back to 0

_T = TypeVar("_T")


async def gather(deferreds: Iterable[Deferred[_T]]) -> list[_T]:
    """All results, or the first failure itself (not wrapped in ``FirstError``)."""
    try:
        results: list[_T] = await gatherResults(list(deferreds), consumeErrors=True)
    except FirstError as err:
        err.subFailure.raiseException()
        raise  # not reached
    return results


async def transaction(client: RedisClient, commands: Sequence[Sequence[Value]]) -> list[Any]:
    """Run ``commands`` (argument lists) in one MULTI/EXEC; the EXEC replies.

    A command rejected while queueing discards the whole transaction; a command
    failing inside EXEC raises its error after the others ran (as Redis does).
    """
    tx = await client.multi()
    return await run_multi(tx, commands)


async def transaction_replies(client: RedisClient,
                              commands: Sequence[Sequence[Value]]) -> list[Any]:
    """Like :func:`transaction`, but a command failing inside EXEC gives its error (an
    exception instance) as its reply instead of raising: for reads that can do without some
    of their parts."""
    tx = await client.multi()
    return await _queue_and_commit(tx, commands)


async def _queue_and_commit(tx: RedisTransaction,
                            commands: Sequence[Sequence[Value]]) -> list[Any]:
    try:
        await gather(tx.execute_command(*cmd) for cmd in commands)
    except BaseException:
        if tx.connected:
            await tx.discard()
        raise
    results: list[Any] = await tx.commit()
    return results


async def run_multi(tx: RedisTransaction, commands: Sequence[Sequence[Value]]) -> list[Any]:
    """Queue ``commands`` on a connection already in MULTI, then EXEC."""
    results = await _queue_and_commit(tx, commands)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def scan_keys(client: RedisClient, pattern: str, count: int = 1000) -> list[str]:
    """Every key matching the glob ``pattern`` (SCAN, never KEYS), without duplicates."""
    found: dict[str, None] = {}
    cursor = "0"
    for _ in range(MAX_SCAN_ROUNDS):
        cursor, batch = await client.scan(cursor, pattern, count)
        found.update(dict.fromkeys(batch))
        if str(cursor) == "0":
            return list(found)
    raise StoreError(f"SCAN {pattern} did not finish")


def batches(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """``items`` cut into consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def delete_keys(client: RedisClient, names: Sequence[str], batch: int = 500) -> None:
    """DEL ``names``, a bounded number per command."""
    for chunk in batches(names, batch):
        await client.delete(list(chunk))
