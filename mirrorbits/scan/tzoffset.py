"""Timezone-offset detection after a mirror scan (spec §6.5, ``FixTimezoneOffsets``).

A mirror serving its files with shifted modification times (an FTP server reporting local
time as UTC, say) would fail every mtime check of the selection (§9.2 rule 3). After a scan,
a random sample of the files both sides hold is compared: when at least 90 % of the pairs
show the same difference, that difference is stored as the mirror's ``tzoffset`` (ms) and
added to the mirror's mtimes during selection when ``FixTimezoneOffsets`` is on.

:func:`detect_offset` is the pure rule; :func:`store_detected_offset` applies it to a sample
read from Redis (:mod:`mirrorbits.store.files`). The reference read the pairs one by one
through its cache; here the sample is read from Redis in one pipelined round trip. A sampled
path whose local ``FILE_`` hash has vanished meanwhile (a concurrent local scan) is skipped
instead of being compared with a zero time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from mirrorbits.encoding import truncate_ns
from mirrorbits.logs import Logger
from mirrorbits.store.client import RedisClient
from mirrorbits.store.files import random_handled_files, read_file_pairs
from mirrorbits.store.scans import store_tz_offset

__all__ = [
    "MIN_PAIRS",
    "SAMPLE_SIZE",
    "detect_offset",
    "read_pairs",
    "store_detected_offset",
]

log = Logger(namespace="mirrorbits.scan.tzoffset")

#: Files drawn from ``HANDLEDFILES_<id>``.
SAMPLE_SIZE: Final = 100
#: Fewest comparable pairs for a guess.
MIN_PAIRS: Final = 10
_NS_PER_MS: Final = 1_000_000


def _to_ms(ns: int) -> int:
    """Nanoseconds to whole milliseconds, truncated toward zero (Go's ``Milliseconds()``)."""
    ms = abs(ns) // _NS_PER_MS
    return ms if ns >= 0 else -ms


def detect_offset(
    pairs: Sequence[tuple[int, int]], sample_size: int, precision_ns: int
) -> int | None:
    """The offset (ms) to add to the mirror's mtimes, or ``None`` when it cannot be guessed.

    ``pairs`` are (local mtime, mirror mtime) in ns of the comparable files of a sample of
    ``sample_size`` paths. Fewer than :data:`MIN_PAIRS` pairs, or fewer than half the sample,
    give ``None``. Both times are truncated to ``precision_ns`` (Go's ``Truncate``; 0 = none)
    before taking ``local - mirror``; the first difference seen ``int(len/100*90)`` times wins.
    """
    if len(pairs) < MIN_PAIRS or len(pairs) < sample_size // 2:
        return None
    threshold = int(len(pairs) / 100 * 90)
    counts: dict[int, int] = {}
    for local_ns, mirror_ns in pairs:
        diff = _to_ms(truncate_ns(local_ns, precision_ns) - truncate_ns(mirror_ns, precision_ns))
        counts[diff] = counts.get(diff, 0) + 1
        if counts[diff] >= threshold:
            return diff
    return None


async def read_pairs(
    client: RedisClient, paths: Sequence[str], mirror_id: int
) -> list[tuple[int, int]]:
    """(local, mirror) mtimes of ``paths`` with equal sizes and a known mirror mtime."""
    pairs: list[tuple[int, int]] = []
    for local, on_mirror in await read_file_pairs(client, mirror_id, paths):
        if local is None or on_mirror is None or on_mirror.mod_time_ns is None:
            continue
        if local.size != on_mirror.size:
            continue
        pairs.append((local.mod_time_ns or 0, on_mirror.mod_time_ns))
    return pairs


async def store_detected_offset(
    client: RedisClient, mirror_id: int, name: str, precision_ns: int
) -> int:
    """Guess the offset of mirror ``mirror_id``, store it as ``tzoffset`` (0 when it cannot be
    guessed, with a warning), publish the mirror update; return it in ms."""
    paths = await random_handled_files(client, mirror_id, SAMPLE_SIZE)
    pairs = await read_pairs(client, paths, mirror_id)
    offset = detect_offset(pairs, len(paths), precision_ns)
    if offset is None:
        log.warn("[{name}] Unable to guess the timezone offset", name=name)
        offset = 0
    await store_tz_offset(client, mirror_id, offset)
    if offset != 0:
        log.info("[{name}] Timezone offset detected: applied correction of {offset}ms",
                 name=name, offset=offset)
    return offset
