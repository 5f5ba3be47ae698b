"""Scoring, weights and ordering of the accepted mirrors (§9.3, §9.4).

Cost per request: O(n) scoring, O(n log n) sort, and for the weighted draw O(k * w) with
k = min(5, w) draws among w weighted mirrors.  Randomness comes only from the injected ``rng``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mirrorbits.float32 import f32
from mirrorbits.model import FileInfo, GeoRecord
from mirrorbits.selection.filter import Entry, Prefiltered, filter_candidates, same_asn, split_codes
from mirrorbits.selection.types import Candidate, Secure, Selection, SelectionOptions

MAX_SELECTED = 5  # mirrors returned by a redirect/JSON answer that draws or shuffles
SMALLEST_FLOAT32 = 2.0**-149  # the closest distance used when the closest mirror is at 0 km
_HUNDRED = f32(100)


def score_candidates(
    accepted: Sequence[Candidate],
    client: GeoRecord,
    closest: float,
    farthest: float,
    weight_distribution_range: float,
) -> tuple[list[int], int]:
    """Set ``computed_score`` on each accepted candidate (client location valid).

    Returns the per-candidate weights (0 = unweighted; same order as ``accepted``) and their
    total.  Float arithmetic is float32 where the reference uses float32.
    """
    if closest == 0:
        closest = SMALLEST_FLOAT32
    base = int(farthest)
    base_f = f32(base)
    radius = f32(closest * f32(weight_distribution_range))
    country = client.country_code
    weights: list[int] = []
    total = 0
    for cand in accepted:
        mirror = cand.mirror
        distance = cand.distance
        s = base - int(distance) + 1
        codes = split_codes(mirror.country_codes)
        primary = bool(codes) and codes[0] == country
        if distance <= radius:
            bonus = f32(base_f - distance)
            if not primary:
                bonus = f32(bonus / 2)
            s += int(bonus)
        elif primary:
            s += int(f32(base_f - f32(distance * 5)))
        elif country in codes[1:]:
            s += int(f32(base_f - closest))
        if same_asn(client.as_num, mirror.asnum):
            s += base // 2
        score = s + s * (mirror.score / 100) + 0.5
        cand.computed_score = int(max(score, 1.0))
        weight = cand.computed_score - base if cand.computed_score > base else 0
        weights.append(weight)
        total += weight
    return weights, total


def _percent(weight: int, total: int) -> float:
    return f32(f32(weight * 100) / f32(total))


def _pick(pool: Sequence[tuple[Candidate, int]], pick: int) -> int:
    """Index of the entry whose cumulative-weight interval contains ``pick``."""
    cumulative = 0
    for index, entry in enumerate(pool):
        cumulative += entry[1]
        if pick < cumulative:
            return index
    raise ValueError("draw beyond the total weight")


def _draw(
    pool: list[tuple[Candidate, int]], count: int, rng: random.Random, total: int
) -> list[Candidate]:
    """Draw ``count`` candidates without replacement, each with probability weight/remaining.

    ``pool`` (the weighted candidates with their weights) is consumed.
    """
    drawn: list[Candidate] = []
    remaining = total
    for _ in range(count):
        cand, weight = pool.pop(_pick(pool, rng.randrange(remaining)))
        remaining -= weight
        cand.weight = _percent(weight, total)
        drawn.append(cand)
    return drawn


def select(
    local: FileInfo,
    entries: Sequence[Entry],
    client: GeoRecord,
    secure: Secure,
    opts: SelectionOptions,
    rng: random.Random,
    mirrorlist: bool = False,
    pre: Prefiltered | None = None,
) -> Selection:
    """Run the whole selection of §9 for one request.

    An unknown local mtime (file not in Redis) gives an empty selection (caller falls back).
    Sorting by score uses Python's stable sort (the reference's sort is unstable in general,
    but stable for the small lists where it uses insertion sort): equal scores keep input order.
    """
    if local.mod_time_ns is None:
        return Selection()
    accepted, excluded, closest, farthest = filter_candidates(
        local, entries, client, secure, opts, pre
    )
    if not client.is_valid:
        rng.shuffle(accepted)
        if not mirrorlist:
            del accepted[MAX_SELECTED:]
        return Selection(accepted, excluded, 0)
    weights, total = score_candidates(
        accepted, client, closest, farthest, opts.weight_distribution_range
    )
    pairs = sorted(zip(accepted, weights, strict=True), key=lambda p: -p[0].computed_score)
    ordered = [cand for cand, _ in pairs]
    selected = sum(1 for _, weight in pairs if weight)
    if mirrorlist:
        # Weighted mirrors are exactly the top ``selected`` ones (score > base).
        for cand, weight in pairs[:selected]:
            cand.weight = _percent(weight, total)
        return Selection(ordered, excluded, selected)
    if selected == 1:
        ordered[0].weight = _HUNDRED
        return Selection(ordered, excluded, selected)
    if selected == 0:
        return Selection(ordered, excluded, 0)
    count = min(MAX_SELECTED, selected)
    drawn = _draw(pairs[:selected], count, rng, total)
    return Selection(drawn, excluded, selected)
