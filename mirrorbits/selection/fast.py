"""Rules 4 to 7 and the scores, weights and order of §9.3–9.4: the selection's one implementation.

:func:`redirect_table` turns a :class:`Prefiltered` into plain per-mirror tuples once (per file
and protocol demand).  For one client, :func:`redirect_order` gives the first mirrors of a
redirect as ``(entry index, distance)`` pairs and :func:`full_view` everything about every
mirror (``score.select`` builds the JSON and mirrorlist candidates from it).  Both use
:func:`_scores` and :func:`_keys` and call ``rng`` alike (same calls, same order), so a redirect
draws what the JSON answer and the mirrorlist page show.

Cost per request: a few C-level passes over the n usable mirrors (distances from the caller's
:class:`SelectionMemo`, one sort of the distances) plus the float32 score formula only for the
few mirrors that can be weighted: those near the client, in its country or AS, under 1 km, or
whose positive mirror score lifts them over the base.  Every other mirror scores
``base - int(distance) + 1`` (scaled by its mirror score) and stays unweighted; the complete
order is sorted only when fewer than two mirrors are weighted (or for the full view).
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import accumulate, compress
from operator import itemgetter
from struct import Struct
from sys import maxsize
from typing import Any

from attrs import frozen

from mirrorbits.float32 import f32
from mirrorbits.model import GeoRecord, Mirror
from mirrorbits.selection.filter import (
    Prefiltered,
    bans_country,
    client_reason,
    outside_as,
    outside_continent,
    outside_countries,
    split_codes,
)
from mirrorbits.selection.geo import Origin
from mirrorbits.selection.memo import SelectionMemo

MAX_SELECTED = 5  # mirrors returned by a redirect/JSON answer that draws or shuffles
SMALLEST_FLOAT32 = 2.0**-149  # the closest distance used when the closest mirror is at 0 km
_EXCLUDED = -1.0  # distance placed on excluded slots: sorts before every real distance
_FLOAT32 = Struct("<f")
_PACK, _UNPACK = _FLOAT32.pack, _FLOAT32.unpack
_HUNDRED = f32(100)

Getter = Callable[[Any], tuple[Any, ...]]


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
    ``memo`` is the caller's memo the locations were interned with (and the distances come from).
    """

    pre: Prefiltered
    memo: SelectionMemo
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
    """The excluded-slot maps of :class:`RedirectTable`: rules 4 to 7 (``filter``'s
    predicates) for every value a mirror names; a value no mirror names is excluded by every
    mirror restricted to a list (the ``*_default`` sets) and banned by none."""
    country_only = [slot for slot, m in enumerate(mirrors) if m.country_only]
    banning = [slot for slot, m in enumerate(mirrors) if m.excluded_country_codes]
    by_country = [*country_only, *banning]
    countries = {code for slot in country_only for code in codes[slot]}
    countries.update(code for slot in banning
                     for code in split_codes(mirrors[slot].excluded_country_codes))
    continent_only = [slot for slot, m in enumerate(mirrors) if m.continent_only]
    as_only = [slot for slot, m in enumerate(mirrors) if m.as_only]
    return {
        "excluded_by_country": {
            country: frozenset(slot for slot in by_country
                               if outside_countries(mirrors[slot], country)
                               or bans_country(mirrors[slot], country))
            for country in countries
        },
        "country_default": frozenset(country_only),
        "excluded_by_continent": {
            code: frozenset(slot for slot in continent_only
                            if outside_continent(mirrors[slot], code))
            for code in {mirrors[slot].continent_code for slot in continent_only}
        },
        "continent_default": frozenset(continent_only),
        "excluded_by_asn": {
            asn: frozenset(slot for slot in as_only if outside_as(mirrors[slot], asn))
            for asn in {mirrors[slot].asnum for slot in as_only} if asn > 0
        },
        "as_default": frozenset(as_only),
    }


_NO_LOCATION = GeoRecord()


def redirect_table(pre: Prefiltered, memo: SelectionMemo | None = None) -> RedirectTable:
    """Precompute everything of ``pre`` the selection needs, interned in the caller's ``memo``
    (a memo of its own when None: correct, but nothing is shared with other tables)."""
    if memo is None:
        memo = SelectionMemo()
    indices = [index for index, entry in enumerate(pre.entries) if not entry[3]]
    mirrors = [pre.entries[index][0] for index in indices]
    facts = [memo.mirror_facts(m) for m in mirrors]
    coordinates = tuple(fact[0] for fact in facts)
    details = tuple(fact[1] for fact in facts)
    points = tuple(memo.point_id(point) for point in coordinates)
    codes = tuple(detail[1] for detail in details)
    by_country: dict[str, list[int]] = {}
    for slot in range(len(mirrors)):
        for code in dict.fromkeys(codes[slot]):
            by_country.setdefault(code, []).append(slot)
    positive = tuple(slot for slot, m in enumerate(mirrors) if m.score > 0)
    ratio_set = tuple(sorted({mirrors[slot].score / 100 for slot in positive}))
    return RedirectTable(
        pre=pre,
        memo=memo,
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
        positive_set=memo.ratio_set_id(ratio_set),
        positive_limits=_getter([ratio_set.index(mirrors[slot].score / 100) for slot in positive]),
        scored=tuple(slot for slot, m in enumerate(mirrors) if m.score),
        restricted=any(entry[4] for entry in pre.entries if not entry[3]),
        **_restrictions(mirrors, codes),
        unlocated=tuple(index for index, m in zip(indices, mirrors, strict=True)
                        if not client_reason(m, _NO_LOCATION)),
    )


def _distances(table: RedirectTable, client: GeoRecord) -> Sequence[float]:
    """Distances (exactly ``Origin.distance_to``) from a located client to every slot."""
    known = table.memo.origins.get((client.latitude, client.longitude))
    try:
        return table.fetch(known[1])  # type: ignore[index]
    except (KeyError, TypeError):
        return table.fetch(table.memo.distances(client.latitude, client.longitude,
                                                table.points, table.coordinates))


def _excluded(table: RedirectTable, client: GeoRecord) -> Collection[int]:
    """The slots rules 4 to 7 exclude for a located client."""
    if not table.restricted:
        return ()
    excluded = table.excluded_by_country.get(client.country_code, table.country_default)
    if table.continent_default:
        excluded = excluded | table.excluded_by_continent.get(client.continent_code,
                                                              table.continent_default)
    if table.as_default:
        excluded = excluded | table.excluded_by_asn.get(client.as_num, table.as_default)
    return excluded


def _scores(
    table: RedirectTable,
    client: GeoRecord,
    weight_distribution_range: float,
    distances: Sequence[float],
    excluded: Collection[int],
) -> tuple[list[tuple[int, int]], int] | None:
    """The score keys of the slots that can be weighted, and the base (farthest accepted
    distance, truncated); None when every slot is excluded.

    A key is ``base + 1 - computed score``: a slot is weighted (weight ``1 - key``) when its key
    is at most 0.  Slots left out score without any bonus (:func:`_keys`).  The arithmetic is
    that of the reference, float32 where it uses float32.
    """
    if excluded:
        marked = list(distances)
        for slot in excluded:
            marked[slot] = _EXCLUDED
        distances = marked
    ascending = sorted(distances)
    first = len(excluded)  # ascending[first] is the closest accepted distance
    if first == len(ascending):
        return None
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
    country = client.country_code
    rich.update(table.by_country.get(country, ()))
    asn = client.as_num
    if asn > 0:
        asns = table.asns
        if asn in asns:
            rich.update(slot for slot, mirror_asn in enumerate(asns) if mirror_asn == asn)
    if table.positive:
        limits = table.memo.limits.get((base, table.positive_set))
        if limits is None:
            limits = table.memo.weighted_below(base, table.positive_set, table.positive_ratios)
        rich.update(compress(table.positive, map(float.__gt__, table.positive_limits(limits),
                                                 table.positive_distances(distances))))
    if excluded:
        rich.difference_update(excluded)
    base_f = float(base)  # f32(base): base <= 20016 km, exact in float32
    half = base // 2
    b1 = base + 1
    details = table.details
    keys: list[tuple[int, int]] = []  # (base + 1 - computed score, slot)
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
    return keys, base


def _keys(table: RedirectTable, distances: Sequence[float], excluded: Collection[int],
          keys: list[tuple[int, int]], base: int) -> list[int]:
    """The score key of every slot (``maxsize`` for an excluded one)."""
    b1 = base + 1
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
    return order


def _draw(pool: list[tuple[int, int]], rng: random.Random) -> list[tuple[int, int]]:
    """The weighted draw: up to :data:`MAX_SELECTED` ``(slot, weight)`` without replacement,
    each with probability weight / remaining weight, from ``pool`` (``(key, slot)`` of the
    weighted slots in order of score; a uniform pick against the cumulative weights)."""
    slots = [slot for _, slot in pool]
    weights = [1 - key for key, _ in pool]
    remaining = sum(weights)
    randrange = rng.randrange
    drawn: list[tuple[int, int]] = []
    for _ in range(min(MAX_SELECTED, len(pool))):
        position = bisect_right(list(accumulate(weights)), randrange(remaining))
        weight = weights.pop(position)
        remaining -= weight
        drawn.append((slots.pop(position), weight))
    return drawn


def redirect_order(
    table: RedirectTable,
    client: GeoRecord,
    weight_distribution_range: float,
    rng: random.Random,
    limit: int,
) -> list[tuple[int, float]]:
    """``(entry index, distance)`` of the first ``limit`` mirrors of the answer: those of
    :func:`full_view` (not the mirrorlist's), with the same ``rng`` calls; an empty list
    when no mirror qualifies."""
    if not client.country_code:  # not client.is_valid
        accepted = list(table.unlocated)
        rng.shuffle(accepted)
        return [(index, 0.0) for index in accepted[: min(limit, MAX_SELECTED)]]
    if not table.indices:
        return []
    distances = _distances(table, client)
    excluded = _excluded(table, client)
    scored = _scores(table, client, weight_distribution_range, distances, excluded)
    if scored is None:
        return []
    keys, base = scored
    indices = table.indices
    pool = sorted([pair for pair in keys if pair[0] <= 0])
    if len(pool) >= 2:
        return [(indices[slot], distances[slot]) for slot, _ in _draw(pool, rng)[:limit]]
    # At most one weighted mirror: the answer is the whole order by score (stable).
    order = _keys(table, distances, excluded, keys, base)
    ranked = sorted(range(len(order)), key=order.__getitem__)[:limit]
    return [(indices[slot], distances[slot]) for slot in ranked if slot not in excluded]


@frozen
class FullView:
    """The selection for one client, by entry index of ``table.pre``.

    ``mirrors``: ``(index, distance, computed score, weight %)`` in answer order (the
    mirrorlist: every accepted mirror); ``excluded``: ``(index, distance, reason)`` in entry
    order; ``weighted``: how many mirrors got a weight.
    """

    mirrors: list[tuple[int, float, int, float]]
    excluded: list[tuple[int, float, str]]
    weighted: int


def _percent(weight: int, total: int) -> float:
    return f32(f32(weight * 100) / f32(total))


def full_view(table: RedirectTable, client: GeoRecord, weight_distribution_range: float,
              rng: random.Random, mirrorlist: bool) -> FullView:
    """Every mirror of ``table`` for ``client``: the answer's mirrors (``mirrorlist``: all the
    accepted ones, no draw, no cut to five) with their scores and weights, and the excluded
    ones with their reasons.  Same ``rng`` calls as :func:`redirect_order`.
    """
    entries = table.pre.entries
    if not client.is_valid:
        accepted = list(table.unlocated)
        rng.shuffle(accepted)
        if not mirrorlist:
            del accepted[MAX_SELECTED:]
        excluded = [(index, 0.0, entry[3] or client_reason(entry[0], client))
                    for index, entry in enumerate(entries)
                    if entry[3] or (entry[4] and client_reason(entry[0], client))]
        return FullView([(index, 0.0, 0, 0.0) for index in accepted], excluded, 0)
    distances: Sequence[float] = ()
    out: Collection[int] = ()
    scored = None
    if table.indices:
        distances = _distances(table, client)
        out = _excluded(table, client)
        scored = _scores(table, client, weight_distribution_range, distances, out)
    distance_to = Origin(client.latitude, client.longitude).distance_to
    slot_of = {index: slot for slot, index in enumerate(table.indices)}
    excluded = []
    for index, (mirror, _, _, reason, _) in enumerate(entries):
        slot = slot_of.get(index)
        if slot is None:
            excluded.append((index, distance_to(mirror.latitude, mirror.longitude), reason))
        elif slot in out:
            excluded.append((index, distances[slot], client_reason(mirror, client)))
    if scored is None:
        return FullView([], excluded, 0)
    keys, base = scored
    order = _keys(table, distances, out, keys, base)
    ranked = [slot for slot in sorted(range(len(order)), key=order.__getitem__)
              if slot not in out]
    weights = {slot: 1 - order[slot] for slot in ranked if order[slot] <= 0}
    total = sum(weights.values())
    b1 = base + 1
    indices = table.indices

    def shown(slot: int, weight: float) -> tuple[int, float, int, float]:
        return indices[slot], distances[slot], b1 - order[slot], weight

    if mirrorlist:
        return FullView([shown(slot, _percent(weights[slot], total) if slot in weights else 0.0)
                         for slot in ranked], excluded, len(weights))
    if len(weights) >= 2:
        pool = sorted((1 - weight, slot) for slot, weight in weights.items())
        return FullView([shown(slot, _percent(weight, total))
                         for slot, weight in _draw(pool, rng)], excluded, len(weights))
    mirrors = [shown(slot, 0.0) for slot in ranked]
    if weights:
        mirrors[0] = (*mirrors[0][:3], _HUNDRED)
    return FullView(mirrors, excluded, len(weights))
