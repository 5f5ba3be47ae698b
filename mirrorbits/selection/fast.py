"""Rules 4 to 7 and the scores, weights and order of §9.3–9.4: the selection's one implementation.

:func:`redirect_table` turns a :class:`Prefiltered` into plain per-mirror tuples once (per file
and protocol demand).  For one client, :func:`redirect_order` gives the first mirrors of a
redirect as ``(entry index, distance)`` pairs and :func:`full_view` everything about every
mirror (``score.select`` builds the JSON and mirrorlist candidates from it): the answer's
mirrors from :func:`redirect_order` itself, the scores and weights from the same
:func:`_scores` and :func:`_keys`, so a redirect draws what a JSON answer would have shown.

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
from itertools import compress, count
from operator import itemgetter
from struct import Struct
from sys import maxsize
from typing import Any

from attrs import field, frozen

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
_SERIALS = count()  # tables' serial numbers: never reused, so a ranking is never misattributed

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
    # Names this table among the rankings its memo remembers (:func:`redirect_order`).
    serial: int = field(factory=lambda: next(_SERIALS), eq=False)


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


Scored = tuple[Sequence[float], Collection[int], list[tuple[int, int]] | None, int]


def _scores(table: RedirectTable, client: GeoRecord, weight_distribution_range: float
            ) -> Scored:
    """For a located client: the distances to every slot (exactly ``Origin.distance_to``), the
    slots rules 4 to 7 exclude, the score keys of the slots that can be weighted and the base
    (farthest accepted distance, truncated); keys None when every slot is excluded.

    A key is ``base + 1 - computed score``: a slot is weighted (weight ``1 - key``) when its key
    is at most 0.  Slots left out score without any bonus (:func:`_keys`).  The arithmetic is
    that of the reference, float32 where it uses float32.
    """
    memo = table.memo
    known = memo.origins.get((client.latitude, client.longitude))
    try:
        distances: Sequence[float] = table.fetch(known[1])  # type: ignore[index]
    except (KeyError, TypeError):
        distances = table.fetch(memo.distances(client.latitude, client.longitude,
                                               table.points, table.coordinates))
    exact = distances
    country = client.country_code
    asn = client.as_num
    excluded: Collection[int] = ()
    if table.restricted:  # rules 4 to 7
        excluded = table.excluded_by_country.get(country, table.country_default)
        if table.continent_default:
            more = table.excluded_by_continent.get(client.continent_code,
                                                   table.continent_default)
            if more:
                excluded = excluded | more if excluded else more
        if table.as_default:
            more = table.excluded_by_asn.get(asn, table.as_default)
            if more:
                excluded = excluded | more if excluded else more
    if excluded:
        marked = list(distances)
        for slot in excluded:
            marked[slot] = _EXCLUDED
        distances = marked
    ascending = sorted(distances)
    first = len(excluded)  # ascending[first] is the closest accepted distance
    if first == len(ascending):
        return exact, excluded, None, 0
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
        limits = memo.limits.get((base, table.positive_set))
        if limits is None:
            limits = memo.weighted_below(base, table.positive_set, table.positive_ratios)
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
    return exact, excluded, keys, base


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


def _shuffled(table: RedirectTable, rng: random.Random) -> list[int]:
    """The entry indices accepted for a client without location, in random order."""
    accepted = list(table.unlocated)
    rng.shuffle(accepted)
    return accepted


# What :func:`redirect_order` knows of one client location before drawing, as one flat tuple:
# ``(total weight, index, distance, weight, index, distance, weight, ...)``.  With a total, the
# weighted mirrors in the order the draw walks them; with 0, the answer itself (weights 0, no
# draw).  Flat, of numbers only: the collector stops tracking it at the first young collection
# it survives (nested tuples would take one collection per level, the outer one reaching the
# old generation), so the rankings the first requests keep (tens of thousands per worker) are
# neither scanned again nor promoted.
_Ranking = tuple[Any, ...]
_NO_RANKING: _Ranking = (0,)


def _ranking(table: RedirectTable, client: GeoRecord, weight_distribution_range: float,
             limit: int) -> _Ranking:
    """The scores of every mirror for ``client`` (located), as the draw or answer they give."""
    distances, excluded, keys, base = _scores(table, client, weight_distribution_range)
    if keys is None:
        return _NO_RANKING
    indices = table.indices
    pool = [pair for pair in keys if pair[0] <= 0]
    ranking: list[Any] = [0]
    if len(pool) >= 2:
        pool.sort()
        for key, slot in pool:
            ranking += (indices[slot], distances[slot], 1 - key)
        ranking[0] = sum(ranking[3::3])
        return tuple(ranking)
    order = _keys(table, distances, excluded, keys, base)
    for slot in sorted(range(len(order)), key=order.__getitem__)[:limit]:
        if slot not in excluded:
            ranking += (indices[slot], distances[slot], 0)
    return tuple(ranking)


def redirect_order(
    table: RedirectTable,
    client: GeoRecord,
    weight_distribution_range: float,
    rng: random.Random,
    limit: int,
) -> list[tuple[int, float]]:
    """``(entry index, distance)`` of the first ``limit`` mirrors of the answer (a redirect's
    or a JSON answer's, not the mirrorlist's); an empty list when no mirror qualifies.

    At least two weighted mirrors: up to :data:`MAX_SELECTED` of them drawn without
    replacement, each with probability weight / remaining weight (a uniform pick against the
    cumulative weights of the rest, in order of score).  Otherwise every accepted mirror by
    score.  A client without location: five accepted mirrors at random.

    What comes before the draw depends only on the table and on the client's location,
    country, continent and AS: it is remembered in the table's memo (``rankings``), so the
    next client of the same place asking for the same file only draws.
    """
    if not client.country_code:  # not client.is_valid
        return [(index, 0.0) for index in _shuffled(table, rng)[: min(limit, MAX_SELECTED)]]
    if not table.indices:
        return []
    key = (table.serial, client.latitude, client.longitude, client.country_code,
           client.continent_code, client.as_num, weight_distribution_range, limit)
    rankings = table.memo.rankings
    ranking = rankings.get(key)
    if ranking is None:
        ranking = _ranking(table, client, weight_distribution_range, limit)
        table.memo.remember_ranking(key, ranking)
    else:
        rankings.move_to_end(key)
    remaining = ranking[0]
    if not remaining:
        return list(zip(ranking[1::3], ranking[2::3], strict=True))
    weights = list(ranking[3::3])
    at = list(range(1, len(ranking), 3))  # where each weighted mirror's index is in ranking
    randrange = rng.randrange
    drawn: list[tuple[int, float]] = []
    for _ in range(min(MAX_SELECTED, len(weights))):  # all drawn: the random calls count
        pick = randrange(remaining)
        position = 0
        for weight in weights:  # the first whose cumulative weight exceeds the pick
            if pick < weight:
                break
            pick -= weight
            position += 1
        remaining -= weights.pop(position)
        index = at.pop(position)
        drawn.append((ranking[index], ranking[index + 1]))
    return drawn[:limit]


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
    """Every mirror of ``table`` for ``client``, with the ``rng`` calls of a redirect.

    The answer's mirrors are :func:`redirect_order`'s (all of them), or for the mirrorlist
    every accepted mirror by score (shuffled for a client without location), with their
    scores and weights (% of the total weight; 100 for the only weighted mirror of an
    answer); the excluded mirrors come with their reasons.
    """
    entries = table.pre.entries
    if not client.is_valid:
        accepted = _shuffled(table, rng)
        if not mirrorlist:
            del accepted[MAX_SELECTED:]
        excluded = [(index, 0.0, entry[3] or client_reason(entry[0], client))
                    for index, entry in enumerate(entries)
                    if entry[3] or (entry[4] and client_reason(entry[0], client))]
        return FullView([(index, 0.0, 0, 0.0) for index in accepted], excluded, 0)
    distances: Sequence[float] = ()
    out: Collection[int] = ()
    keys = None
    base = 0
    if table.indices:
        distances, out, keys, base = _scores(table, client, weight_distribution_range)
    distance_to = Origin(client.latitude, client.longitude).distance_to
    slot_of = {index: slot for slot, index in enumerate(table.indices)}
    excluded = []
    for index, (mirror, _, _, reason, _) in enumerate(entries):
        slot = slot_of.get(index)
        if slot is None:
            excluded.append((index, distance_to(mirror.latitude, mirror.longitude), reason))
        elif slot in out:
            excluded.append((index, distances[slot], client_reason(mirror, client)))
    if keys is None:
        return FullView([], excluded, 0)
    order = _keys(table, distances, out, keys, base)
    weights = {slot: 1 - key for slot, key in enumerate(order) if key <= 0}
    total = sum(weights.values())
    if mirrorlist:
        shown = [slot for slot in sorted(range(len(order)), key=order.__getitem__)
                 if slot not in out]
    else:
        shown = [slot_of[index] for index, _ in redirect_order(
            table, client, weight_distribution_range, rng, len(order))]
    b1 = base + 1
    indices = table.indices
    mirrors = [(indices[slot], distances[slot], b1 - order[slot],
                _percent(weights[slot], total) if slot in weights else 0.0) for slot in shown]
    if len(weights) == 1 and not mirrorlist:
        mirrors[0] = (*mirrors[0][:3], _HUNDRED)
    return FullView(mirrors, excluded, len(weights))
