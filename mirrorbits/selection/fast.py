"""The redirect's mirror order without building candidates: same result as :func:`select`.

:func:`redirect_table` turns a :class:`Prefiltered` into plain per-mirror tuples once;
:func:`redirect_order` then answers one client with the first mirrors of
``select(..., mirrorlist=False, pre=pre).mirrors`` as ``(entry index, distance)`` pairs,
calling ``rng`` exactly as :func:`select` does (same calls, same order).

Cost per request: a few C-level passes over the n usable mirrors (distances from a per-origin
memo, one sort of the distances) plus the float32 score formula of :func:`score_candidates`
only for the few mirrors that can be weighted: those near the client, in its country or AS,
under 1 km, or whose positive mirror score lifts them over the base.  Every other mirror scores
``base - int(distance) + 1`` (scaled by its mirror score) and stays unweighted; the complete
order is sorted only when fewer than two mirrors are weighted.

Module-level memos (bounded; ids are never reused, so clearing one never makes another wrong):
interned mirror locations, the distances of recent client locations (exactly
``Origin.distance_to``), interned sets of positive ratios and their weighted-distance limits.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import lru_cache
from itertools import accumulate, compress, count
from operator import itemgetter
from struct import Struct
from sys import maxsize
from typing import Any

from attrs import frozen

from mirrorbits.model import GeoRecord, Mirror
from mirrorbits.selection.filter import Prefiltered, split_codes
from mirrorbits.selection.geo import Origin, origin_at
from mirrorbits.selection.score import MAX_SELECTED, SMALLEST_FLOAT32

_POINT_LIMIT = 65_536  # interned mirror locations (beyond that, interning starts over)
_ORIGIN_LIMIT = 4096  # client locations whose distances are remembered
_DISTANCE_LIMIT = 4096  # distances one client location remembers
_LIMIT_LIMIT = 65_536  # remembered (base, ratio set) -> weighted-distance limits
_ORIGINS: dict[tuple[float, float], tuple[Origin, dict[int, float]]] = {}
_LIMITS: dict[tuple[int, int], tuple[float, ...]] = {}
_EXCLUDED = -1.0  # distance placed on excluded slots: sorts before every real distance
_FLOAT32 = Struct("<f")
_PACK, _UNPACK = _FLOAT32.pack, _FLOAT32.unpack

Getter = Callable[[Any], tuple[Any, ...]]


class _Interner:
    """Small never-reused ids for hashable values, so that a memo keyed by an id never goes
    wrong: when the table is full it starts over, and old ids simply stop matching."""

    __slots__ = ("_next", "_values")

    def __init__(self) -> None:
        self._values: dict[Any, int] = {}
        self._next = count()

    def __call__(self, value: Any) -> int:
        ident = self._values.get(value)
        if ident is None:
            if len(self._values) >= _POINT_LIMIT:
                self._values.clear()
            ident = self._values[value] = next(self._next)
        return ident


_point_id = _Interner()  # (latitude, longitude) -> id
_ratio_set_id = _Interner()  # the distinct positive ratios of a table -> id


def _getter(keys: Sequence[int]) -> Getter:
    """``lambda seq: tuple(seq[k] for k in keys)``, in C when there are two keys or more."""
    if len(keys) >= 2:
        return itemgetter(*keys)
    if keys:
        only = keys[0]
        return lambda seq: (seq[only],)
    return lambda seq: ()


@frozen
class RedirectTable:
    """The usable mirrors of one :class:`Prefiltered` (static reason empty), as plain tuples.

    Mirrors are numbered by *slot*: their rank among the usable entries, in entry order.
    """

    indices: tuple[int, ...]  # slot -> index in ``pre.entries``
    points: tuple[int, ...]  # slot -> interned location id
    coordinates: tuple[tuple[float, float], ...]  # slot -> (latitude, longitude)
    fetch: Getter  # distance memo (point id -> km) -> distances by slot
    # slot -> (first country code or "", country codes, ASN, mirror.score / 100)
    details: tuple[tuple[str, tuple[str, ...], int, float], ...]
    ratios: tuple[float, ...]  # slot -> mirror.score / 100
    by_country: Mapping[str, tuple[int, ...]]  # country code -> slots listing it
    asns: tuple[int, ...]  # slot -> ASN
    positive: tuple[int, ...]  # slots with a positive mirror score
    positive_distances: Getter  # distances by slot -> those of ``positive``
    positive_ratios: tuple[float, ...]  # the distinct positive ratios (sorted)
    positive_set: int  # interned id of ``positive_ratios``
    positive_limits: Getter  # limits by distinct ratio -> the limit of each ``positive`` slot
    scored: tuple[int, ...]  # slots with a non-zero mirror score
    restricted: bool  # whether rules 4 to 7 can exclude any slot
    # Slots rules 4 to 7 exclude, by client country / continent / ASN (default: absent key).
    excluded_by_country: Mapping[str, frozenset[int]]
    country_default: frozenset[int]
    excluded_by_continent: Mapping[str, frozenset[int]]
    continent_default: frozenset[int]
    excluded_by_asn: Mapping[int, frozenset[int]]
    as_default: frozenset[int]
    unlocated: tuple[int, ...]  # entry indices accepted for a client without location


def _restrictions(mirrors: Sequence[Mirror], codes: Sequence[tuple[str, ...]]
                  ) -> dict[str, Any]:
    """The excluded-slot maps of :class:`RedirectTable` (rules 4 to 7 of ``_check_client``)."""
    country_only = {slot: codes[slot] for slot, m in enumerate(mirrors) if m.country_only}
    banned = {slot: split_codes(m.excluded_country_codes) for slot, m in enumerate(mirrors)}
    continent = {slot: m.continent_code for slot, m in enumerate(mirrors) if m.continent_only}
    asns = {slot: m.asnum for slot, m in enumerate(mirrors) if m.as_only}
    countries = {code for listed in (*country_only.values(), *banned.values()) for code in listed}
    return {
        "excluded_by_country": {
            country: frozenset([slot for slot, listed in country_only.items()
                                if country not in listed]
                               + [slot for slot, listed in banned.items() if country in listed])
            for country in countries
        },
        "country_default": frozenset(country_only),
        "excluded_by_continent": {
            code: frozenset(slot for slot, own in continent.items() if own != code)
            for code in continent.values()
        },
        "continent_default": frozenset(continent),
        "excluded_by_asn": {
            asn: frozenset(slot for slot, own in asns.items() if own != asn)
            for asn in asns.values() if asn > 0
        },
        "as_default": frozenset(asns),
    }


@lru_cache(maxsize=8192)
def _mirror_facts(mirror: Mirror) -> tuple[tuple[float, float],
                                           tuple[str, tuple[str, ...], int, float]]:
    """A mirror's location and scoring details, shared by the tables of every file it holds."""
    codes = split_codes(mirror.country_codes)
    return ((mirror.latitude, mirror.longitude),
            (codes[0] if codes else "", codes, mirror.asnum, mirror.score / 100))


def redirect_table(pre: Prefiltered) -> RedirectTable:
    """Precompute everything of ``pre`` that :func:`redirect_order` needs."""
    indices = [index for index, entry in enumerate(pre.entries) if not entry[3]]
    mirrors = [pre.entries[index][0] for index in indices]
    facts = [_mirror_facts(m) for m in mirrors]
    coordinates = tuple(fact[0] for fact in facts)
    details = tuple(fact[1] for fact in facts)
    points = tuple(_point_id(point) for point in coordinates)
    codes = tuple(detail[1] for detail in details)
    by_country: dict[str, list[int]] = {}
    for slot in range(len(mirrors)):
        for code in dict.fromkeys(codes[slot]):
            by_country.setdefault(code, []).append(slot)
    positive = tuple(slot for slot, m in enumerate(mirrors) if m.score > 0)
    ratio_set = tuple(sorted({mirrors[slot].score / 100 for slot in positive}))
    return RedirectTable(
        indices=tuple(indices),
        points=points,
        coordinates=coordinates,
        fetch=_getter(points),
        details=details,
        ratios=tuple(detail[3] for detail in details),
        by_country={code: tuple(slots) for code, slots in by_country.items()},
        asns=tuple(detail[2] for detail in details),
        positive=positive,
        positive_distances=_getter(positive),
        positive_ratios=ratio_set,
        positive_set=_ratio_set_id(ratio_set),
        positive_limits=_getter([ratio_set.index(mirrors[slot].score / 100) for slot in positive]),
        scored=tuple(slot for slot, m in enumerate(mirrors) if m.score),
        restricted=any(entry[4] for entry in pre.entries if not entry[3]),
        **_restrictions(mirrors, codes),
        unlocated=tuple(index for index, m in zip(indices, mirrors, strict=True)
                        if not (m.continent_only or m.country_only or m.as_only)),
    )


def _distances(table: RedirectTable, latitude: float, longitude: float) -> list[float]:
    """Distances (exactly ``Origin.distance_to``) from the client to every slot."""
    key = (latitude, longitude)
    known = _ORIGINS.get(key)
    if known is None:
        if len(_ORIGINS) >= _ORIGIN_LIMIT:
            _ORIGINS.clear()
        known = _ORIGINS[key] = (origin_at(latitude, longitude), {})
    memo = known[1]
    try:
        return list(table.fetch(memo))
    except KeyError:
        pass
    if len(memo) >= _DISTANCE_LIMIT:
        memo.clear()
    distance_to = known[0].distance_to
    for point, (lat, lon) in zip(table.points, table.coordinates, strict=True):
        if point not in memo:
            memo[point] = distance_to(lat, lon)
    return list(table.fetch(memo))


def _weighted_below(base: int, ratio_set: int, ratios: tuple[float, ...]) -> tuple[float, ...]:
    """The distances under which bonus-less mirrors with these positive ratios are weighted.

    A score ``int(max(s + s * ratio + 0.5, 1.0))`` with ``s = base - int(d) + 1`` grows with
    ``s`` (float operations are monotonic), so it exceeds ``base`` exactly when ``s`` reaches
    some ``s_min`` (at most ``base + 1``), i.e. when ``d < base + 2 - s_min``.
    """
    key = (base, ratio_set)
    limits = _LIMITS.get(key)
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
        if len(_LIMITS) >= _LIMIT_LIMIT:
            _LIMITS.clear()
        limits = _LIMITS[key] = tuple(found)
    return limits


def redirect_order(
    table: RedirectTable,
    client: GeoRecord,
    weight_distribution_range: float,
    rng: random.Random,
    limit: int,
) -> list[tuple[int, float]]:
    """``(entry index, distance)`` of the first ``limit`` mirrors :func:`select` would return.

    Same order and same ``rng`` calls as ``select(local, (), client, secure, opts, rng,
    pre=pre)`` with ``table = redirect_table(pre)``; an empty list when it selects nothing.
    """
    country = client.country_code
    if not country:  # not client.is_valid
        accepted = list(table.unlocated)
        rng.shuffle(accepted)
        return [(index, 0.0) for index in accepted[: min(limit, MAX_SELECTED)]]
    if not table.indices:
        return []
    known = _ORIGINS.get((client.latitude, client.longitude))
    try:
        distances: Sequence[float] = table.fetch(known[1])  # type: ignore[index]
    except (KeyError, TypeError):
        distances = _distances(table, client.latitude, client.longitude)
    asn = client.as_num
    excluded: Collection[int] = ()
    if table.restricted:  # rules 4 to 7, as _check_client for a located client
        excluded = table.excluded_by_country.get(country, table.country_default)
        if table.continent_default:
            excluded = excluded | table.excluded_by_continent.get(client.continent_code,
                                                                  table.continent_default)
        if table.as_default:
            excluded = excluded | table.excluded_by_asn.get(asn, table.as_default)
        if excluded:
            distances = list(distances)
            for slot in excluded:
                distances[slot] = _EXCLUDED
    ascending = sorted(distances)
    first = len(excluded)  # ascending[first] is the closest accepted distance
    if first == len(ascending):
        return []
    # From here on, the arithmetic of score_candidates, term by term.
    closest = ascending[first]
    base = int(ascending[-1])
    near_one = closest < 1  # a bonus-less mirror under 1 km scores base + 1: weighted
    if closest == 0:
        closest = SMALLEST_FLOAT32
    pack, unpack = _PACK, _UNPACK
    radius = unpack(pack(closest * unpack(pack(weight_distribution_range))[0]))[0]
    special = bisect_right(ascending, radius)
    if near_one:
        special = max(special, bisect_left(ascending, 1.0))
    # Candidates for a weight: near, under 1 km, in the client's country or AS, or with a
    # positive mirror score under its distance limit.  All others score s = base - int(d) + 1
    # (d >= 1) scaled by a ratio <= 0: never over the base.
    rich: set[int] = set()
    slot = -1
    previous = _EXCLUDED
    for distance in ascending[first:special]:
        slot = distances.index(distance, slot + 1 if distance == previous else 0)
        previous = distance
        rich.add(slot)
    rich.update(table.by_country.get(country, ()))
    if asn > 0:
        asns = table.asns
        if asn in asns:
            rich.update(slot for slot, mirror_asn in enumerate(asns) if mirror_asn == asn)
    if table.positive:
        limits = _LIMITS.get((base, table.positive_set))
        if limits is None:
            limits = _weighted_below(base, table.positive_set, table.positive_ratios)
        rich.update(compress(table.positive, map(float.__gt__, table.positive_limits(limits),
                                                 table.positive_distances(distances))))
    if excluded:
        rich.difference_update(excluded)
    base_f = float(base)  # f32(base): base <= 20016 km, exact in float32
    half = base // 2
    b1 = base + 1
    details = table.details
    keys: list[tuple[int, int]] = []  # (base + 1 - computed score, slot); weighted when <= 0
    for slot in rich:
        d = distances[slot]
        s = b1 - int(d)
        first_code, codes, mirror_asn, ratio = details[slot]
        primary = first_code == country
        if d <= radius:
            if primary:
                s += int(unpack(pack(base_f - d))[0])
            else:
                s += int(unpack(pack(unpack(pack(base_f - d))[0] / 2))[0])
        elif primary:
            s += int(unpack(pack(base_f - unpack(pack(d * 5))[0]))[0])
        elif country in codes:  # listed, not first: a secondary country
            s += int(unpack(pack(base_f - closest))[0])
        if asn > 0 and asn == mirror_asn:
            s += half
        score = s + s * ratio + 0.5
        keys.append((b1 - int(score) if score >= 1.0 else base, slot))
    indices = table.indices
    pool = sorted([pair for pair in keys if pair[0] <= 0])
    if len(pool) >= 2:  # the weighted draw of select (score._draw)
        slots = [slot for _, slot in pool]
        weights = [1 - key for key, _ in pool]
        remaining = sum(weights)
        randrange = rng.randrange
        drawn: list[tuple[int, float]] = []
        for _ in range(min(MAX_SELECTED, len(pool))):
            position = bisect_right(list(accumulate(weights)), randrange(remaining))
            remaining -= weights.pop(position)
            slot = slots.pop(position)
            drawn.append((indices[slot], distances[slot]))
        return drawn[:limit]
    # At most one weighted mirror: the answer is the whole order by score (stable).
    order = list(map(int, distances))  # bonus-less, unscored: base + 1 - score = int(d)
    ratios = table.ratios
    for slot in table.scored:  # bonus-less (overwritten below otherwise)
        s = b1 - order[slot]
        score = s + s * ratios[slot] + 0.5
        order[slot] = b1 - int(score) if score >= 1.0 else base
    for key, slot in keys:
        order[slot] = key
    for slot in excluded:
        order[slot] = maxsize
    ranked = sorted(range(len(order)), key=order.__getitem__)[:limit]
    return [(indices[slot], distances[slot]) for slot in ranked if slot not in excluded]
