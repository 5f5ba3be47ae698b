"""What the selection remembers from one request to the next, owned by its caller.

The selection keeps no state of its own: the caller creates one :class:`SelectionMemo` (the web
context holds it for the life of the process) and builds its redirect tables with it; each
table then uses that memo for every client it answers.  Every map is bounded and starts over
when full.  Interned ids are never reused, so a table built before a map started over simply
misses (and recomputes), it never reads another location's distance.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from itertools import count
from typing import Any

from mirrorbits.model import Mirror
from mirrorbits.selection.filter import split_codes
from mirrorbits.selection.geo import Origin, Point

POINT_LIMIT = 65_536  # interned mirror locations and ratio sets
ORIGIN_LIMIT = 4096  # client locations whose distances are remembered
DISTANCE_LIMIT = 4096  # distances one client location remembers
LIMIT_LIMIT = 65_536  # remembered (base, ratio set) -> weighted-distance limits
FACT_LIMIT = 8192  # mirrors whose scoring details are shared by the tables
RANKING_LIMIT = 65_536  # remembered (table, client location) rankings, least recent out first

# A mirror's location, then (first country code or "", country codes, ASN, mirror.score / 100).
MirrorFacts = tuple[tuple[float, float], tuple[str, tuple[str, ...], int, float]]


class Interner:
    """Small never-reused ids for hashable values; when full it starts over with new ids."""

    __slots__ = ("_next", "_values")

    def __init__(self) -> None:
        self._values: dict[Hashable, int] = {}
        self._next = count()

    def __call__(self, value: Hashable) -> int:
        ident = self._values.get(value)
        if ident is None:
            if len(self._values) >= POINT_LIMIT:
                self._values.clear()
            ident = self._values[value] = next(self._next)
        return ident

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> Iterable[tuple[Any, int]]:
        """Each value with its id."""
        return self._values.items()


class SelectionMemo:
    """Interned mirror locations, distances of recent client locations, weighted-distance
    limits and per-mirror scoring details, shared by every table built with it.

    ``origins`` maps a client location to its :class:`Origin` and the distances it already
    computed (interned location id -> km, exactly ``Origin.distance_to``); ``limits`` maps
    ``(base, ratio set id)`` to the distance limits of :func:`weighted_below`; ``rankings``
    maps a table and everything of a client the scores depend on to what
    :func:`~mirrorbits.selection.fast.redirect_order` computed before its random draw (at most
    :data:`RANKING_LIMIT`, the least recently used dropped first: one at a time, so that no
    request pays for clearing a large map).
    """

    __slots__ = ("_facts", "_points", "limits", "origins", "point_id", "rankings",
                 "ratio_set_id")

    def __init__(self) -> None:
        self.point_id = Interner()  # (latitude, longitude) -> id
        self.ratio_set_id = Interner()  # the distinct positive ratios of a table -> id
        self.origins: dict[tuple[float, float], tuple[Origin, dict[int, float]]] = {}
        self.limits: dict[tuple[int, int], tuple[float, ...]] = {}
        self.rankings: OrderedDict[Hashable, Any] = OrderedDict()
        self._facts: dict[Mirror, MirrorFacts] = {}
        self._points: dict[int, Point] = {}  # interned location id -> its side of the formula

    def remember_ranking(self, key: Hashable, ranking: Any) -> None:
        """Keep ``ranking`` under ``key``, dropping the least recently used when full."""
        rankings = self.rankings
        rankings[key] = ranking
        if len(rankings) > RANKING_LIMIT:
            rankings.popitem(last=False)

    def mirror_facts(self, mirror: Mirror) -> MirrorFacts:
        """A mirror's location and scoring details, shared by the tables of every file it
        holds (one copy per mirror, not one per file)."""
        facts = self._facts.get(mirror)
        if facts is None:
            codes = split_codes(mirror.country_codes)
            facts = ((mirror.latitude, mirror.longitude),
                     (codes[0] if codes else "", codes, mirror.asnum, mirror.score / 100))
            if len(self._facts) >= FACT_LIMIT:
                self._facts.clear()
            self._facts[mirror] = facts
        return facts

    def distances(self, latitude: float, longitude: float, points: Sequence[int],
                  coordinates: Sequence[tuple[float, float]]) -> dict[int, float]:
        """The distance memo of a client location, holding at least ``points``."""
        key = (latitude, longitude)
        known = self.origins.get(key)
        if known is None:
            if len(self.origins) >= ORIGIN_LIMIT:
                self.origins.clear()
            known = self.origins[key] = (Origin(latitude, longitude), {})
        origin, memo = known
        if len(memo) >= DISTANCE_LIMIT:
            memo.clear()
        new = [(point, coordinate) for point, coordinate in zip(points, coordinates, strict=True)
               if point not in memo]
        if new and len(memo) + len(self.point_id) <= DISTANCE_LIMIT:
            # Every mirror location known (each table's, interned when it was built) at once:
            # a client location's first requests for other files then find their distances.
            asked = new
            new = [(point, coordinate) for coordinate, point in self.point_id.items()
                   if point not in memo]
            listed = {point for point, _ in new}  # and ids from before it started over
            new += [pair for pair in asked if pair[0] not in listed]
        if new:
            known_points = self._points
            if len(known_points) >= POINT_LIMIT:
                known_points.clear()
            located = []
            for point, (lat, lon) in new:
                part = known_points.get(point)
                if part is None:
                    part = known_points[point] = Point(lat, lon)
                located.append(part)
            memo.update(zip([point for point, _ in new], origin.distances_to(located),
                            strict=True))
        return memo

    def weighted_below(self, base: int, ratio_set: int,
                       ratios: Sequence[float]) -> tuple[float, ...]:
        """The distances under which bonus-less mirrors with these positive ratios are weighted.

        A score ``int(max(s + s * ratio + 0.5, 1.0))`` with ``s = base - int(d) + 1`` grows with
        ``s`` (float operations are monotonic), so it exceeds ``base`` exactly when ``s``
        reaches some ``s_min`` (at most ``base + 1``), i.e. when ``d < base + 2 - s_min``.
        """
        key = (base, ratio_set)
        limits = self.limits.get(key)
        if limits is None:
            found = []
            for ratio in ratios:

                def weighted(s: int, ratio: float = ratio) -> bool:
                    return int(max(s + s * ratio + 0.5, 1.0)) > base

                s = max(1, min(base + 1, int((base + 0.5) / (1 + ratio))))
                while s > 1 and weighted(s - 1):
                    s -= 1
                while not weighted(s):
                    s += 1
                found.append(float(base + 2 - s))
            if len(self.limits) >= LIMIT_LIMIT:
                self.limits.clear()
            limits = self.limits[key] = tuple(found)
        return limits
