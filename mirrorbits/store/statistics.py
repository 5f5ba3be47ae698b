"""Reading the download counters (spec §11.2, §8.9, §8.10) and the Range-request marker.

The counters are written by :mod:`mirrorbits.store.statsflush`. Periods are given as key
suffixes: ``""`` (all time), ``"_2026"``, ``"_2026_11"``, ``"_2026_11_25"`` (see
:func:`~mirrorbits.store.keys.stats_suffixes`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime

from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient
from mirrorbits.store.commands import transaction_replies

__all__ = [
    "count",
    "day_suffixes",
    "downloads_per_file",
    "file_downloads",
    "file_downloads_in",
    "files_downloads_in",
    "mirror_downloads",
    "mirrors_downloads_in",
    "mirrors_downloads_per_day",
    "seen_within",
]

_T = TypeVar("_T")


def day_suffixes(day: date) -> tuple[str, str, str, str]:
    """The key suffixes of ``day``'s day, month, year, and of all time."""
    return keys.stats_suffixes(day.year, day.month, day.day)


def count(value: object) -> int:
    """A counter's value; 0 when missing or not a number."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


async def file_downloads(client: RedisClient, path: str, suffixes: Sequence[str]) -> list[int]:
    """The downloads of ``path`` in each period (``STATS_FILE<suffix>``), read concurrently."""
    field = _path_field(path)
    replies = await gatherResults(
        [client.hget(keys.STATS_FILE + suffix, field) for suffix in suffixes])
    return [count(reply) for reply in replies]


async def file_downloads_in(client: RedisClient, path: str, suffix: str) -> int:
    """The downloads of ``path`` in one period."""
    return count(await client.hget(keys.STATS_FILE + suffix, _path_field(path)))


async def files_downloads_in(client: RedisClient, suffix: str) -> dict[str, int]:
    """The downloads of every file counted in one period (paths decoded as requests are)."""
    counters = await client.hgetall(keys.STATS_FILE + suffix) or {}
    return {_field_path(field): count(value) for field, value in counters.items()}


def _field_path(field: object) -> str:
    """A hash field back as the path it counts (the inverse of :func:`_path_field`)."""
    if isinstance(field, bytes):
        return field.decode("utf-8", "surrogateescape")
    return str(field)


def _path_field(path: str) -> bytes:
    """A path as its hash field: the request's bytes, even when they are not UTF-8 (a
    request path's undecodable bytes are kept as surrogates, and counted that way)."""
    return path.encode("utf-8", "surrogateescape")


async def downloads_per_file(
    client: RedisClient, pattern: re.Pattern[str], suffixes: Sequence[str]
) -> dict[str, int]:
    """Downloads per file path matching ``pattern`` (unanchored search), summed over the
    periods."""
    hashes = await gatherResults([client.hgetall(keys.STATS_FILE + s) for s in suffixes])
    totals: Counter[str] = Counter()
    for content in hashes:
        for name, value in (content or {}).items():
            if pattern.search(name):
                totals[name] += count(value)
    return dict(totals)


async def mirror_downloads(
    client: RedisClient, mirror_id: int, suffixes: Sequence[str]
) -> tuple[int, int]:
    """(download requests, bytes) of one mirror, summed over the periods."""
    field_name = str(mirror_id)
    requests = await gatherResults(
        [client.hget(keys.STATS_MIRROR + s, field_name) for s in suffixes])
    sizes = await gatherResults(
        [client.hget(keys.STATS_MIRROR_BYTES + s, field_name) for s in suffixes])
    return sum(map(count, requests)), sum(map(count, sizes))


async def mirrors_downloads_in(client: RedisClient, suffix: str) -> dict[int, int]:
    """The downloads of every mirror counted in one period (``STATS_MIRROR<suffix>``: mirror
    id -> count); fields that are not mirror ids are skipped."""
    counters = await client.hgetall(keys.STATS_MIRROR + suffix) or {}
    counts: dict[int, int] = {}
    for name, value in counters.items():
        if name.isdigit():
            counts[int(name)] = count(value)
    return counts


async def mirrors_downloads_per_day(
    client: RedisClient, mirror_ids: Sequence[int], days: Sequence[date]
) -> list[dict[int, tuple[int, int]] | None]:
    """(download requests, bytes) of each mirror on each of ``days``, all read in one MULTI
    (one round trip whatever the number of days); ``None`` for a day whose keys cannot be
    read (not hashes)."""
    if not mirror_ids or not days:
        return [{} for _ in days]
    fields = [str(mirror_id) for mirror_id in mirror_ids]
    commands: list[tuple[str, ...]] = []
    for day in days:
        suffix = day_suffixes(day)[0]
        commands.append(("HMGET", keys.STATS_MIRROR + suffix, *fields))
        commands.append(("HMGET", keys.STATS_MIRROR_BYTES + suffix, *fields))
    replies = await transaction_replies(client, commands)
    return [_day_counters(mirror_ids, counts, amounts)
            for counts, amounts in zip(replies[0::2], replies[1::2], strict=True)]


def _day_counters(mirror_ids: Sequence[int], counts: Any,
                  amounts: Any) -> dict[int, tuple[int, int]] | None:
    if isinstance(counts, Exception) or isinstance(amounts, Exception):
        return None
    return {mirror_id: (count(requests), count(size))
            for mirror_id, requests, size in zip(mirror_ids, counts, amounts, strict=True)}


async def seen_within(
    client: RedisClient,
    client_digest: str,
    path: str,
    interval_s: int,
    *,
    set_get: bool,
    clock: IReactorTime | None,
    timeout_s: float,
) -> bool:
    """Whether the client (``client_digest``) downloaded ``path`` in the last ``interval_s``
    seconds; marks it as downloaded now (``DOWNLOADED_<digest>_<path>``, §8.3.11).

    ``SET ... GET EX`` (Redis ≥ 6.2, ``set_get``) or ``GET`` then ``SET ... EX``; each
    command waits at most ``timeout_s`` with a ``clock``.
    """
    key = keys.downloaded(client_digest, path)

    def bounded(d: Deferred[_T]) -> Deferred[_T]:
        if clock is not None and not d.called:
            d.addTimeout(timeout_s, clock)
        return d

    if set_get:
        previous = await bounded(client.execute_command("SET", key, "1", "GET", "EX",
                                                        interval_s))
    else:
        previous = await bounded(client.get(key))
        await bounded(client.set(key, "1", expire=interval_s))
    return previous is not None
