"""Which file of a mirror to verify next (pure): the popular ones more often, the long tail
less, in the proportion that finds a lost file at the least cost in users.

A mirror's held files are ranked by downloads (most downloaded first). A file downloaded ``d``
times has the weight ``√d`` (:func:`download_weight`); each turn verifies the held file whose
``age × weight`` is largest, ``age`` being the seconds since it was last verified (since it was
first seen, plus :data:`NEVER_VERIFIED_AGE`, when never). Over many turns each file gets a
share of the turns proportional to its weight. A lost file costs its downloads until it is
found, and it is found after about ``1 / share`` turns: the expected cost ``Σ dᵢ / shareᵢ`` is
least when the shares go as ``√dᵢ`` (a file four times as popular is verified twice as often;
docs/freshness.md compares this with steeper rules). Without download counts the rank's weight
``1 / (1 + r / SPREAD)²`` is used (:func:`weight`). Memory is bounded: at most
:data:`MAX_RANKED` paths are ranked, and only their pairs are remembered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from attrs import define, field

#: Popular paths ranked at most (the others are left to the scans and health checks).
MAX_RANKED = 1000
#: How fast the weight falls with the rank.
SPREAD = 3.0
#: Age given to a pair never verified, beyond the time since it was first seen: the top files
#: of a mirror go first after a start.
NEVER_VERIFIED_AGE = 60.0

__all__ = ["MAX_RANKED", "NEVER_VERIFIED_AGE", "SPREAD", "Rotation", "download_weight",
           "ranked", "weight"]


def weight(rank: int) -> float:
    """The share of turns (unnormalised) of the file of ``rank`` among a mirror's files."""
    return 1.0 / (1.0 + rank / SPREAD) ** 2


def download_weight(downloads: int) -> float:
    """The share of turns (unnormalised) of a file downloaded ``downloads`` times."""
    return math.sqrt(max(downloads, 1))


def ranked(downloads: Mapping[str, int], limit: int = MAX_RANKED) -> list[str]:
    """The ``limit`` most downloaded paths, most first (ties by path, so the order is
    stable)."""
    best = sorted(downloads.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [path for path, count in best if count > 0]


@define
class Rotation:
    """Per mirror, its popular held files and when each was last verified."""

    # mirror id -> its held paths, most downloaded first
    _held: dict[int, list[str]] = field(factory=dict)
    _weights: dict[str, float] = field(factory=dict)  # path -> weight, when downloads are known
    # (mirror id, path) -> seconds of the last verification (or first sight - NEVER...)
    _last: dict[tuple[int, str], float] = field(factory=dict)

    def set_held(self, holders: Mapping[str, Iterable[int]], popular: Sequence[str],
                 now: float, downloads: Mapping[str, int] | None = None) -> None:
        """The popular paths (most downloaded first) and the mirrors holding each; pairs no
        longer there are forgotten. ``downloads``: each path's count (its weight is then
        :func:`download_weight`; else its rank's)."""
        self._weights = ({} if downloads is None else
                         {path: download_weight(downloads.get(path, 0))
                          for path in popular[:MAX_RANKED]})
        held: dict[int, list[str]] = {}
        for path in popular[:MAX_RANKED]:
            for mirror_id in holders.get(path, ()):
                held.setdefault(mirror_id, []).append(path)
        pairs = {(mirror_id, path) for mirror_id, paths in held.items() for path in paths}
        self._last = {pair: self._last.get(pair, now - NEVER_VERIFIED_AGE) for pair in pairs}
        self._held = held

    def choose(self, mirror_id: int, now: float) -> str | None:
        """The file of ``mirror_id`` to verify now; ``None`` when it holds no popular file."""
        best: str | None = None
        best_score = -1.0
        weights = self._weights
        for rank, path in enumerate(self._held.get(mirror_id, ())):
            score = (now - self._last[mirror_id, path]) * (
                weights[path] if weights else weight(rank))
            if score > best_score:
                best, best_score = path, score
        return best

    def verified(self, mirror_id: int, path: str, now: float) -> None:
        if (mirror_id, path) in self._last:
            self._last[mirror_id, path] = now

    def forget(self, mirror_id: int, path: str) -> None:
        """``mirror_id`` no longer holds ``path`` (lost): not verified there again until a
        scan records it and the next popularity read sees it."""
        paths = self._held.get(mirror_id)
        if paths is not None and path in paths:
            paths.remove(path)
        self._last.pop((mirror_id, path), None)

    def held(self, mirror_id: int) -> list[str]:
        return list(self._held.get(mirror_id, ()))

    @property
    def pairs(self) -> int:
        return len(self._last)
