"""The selection of §9.2–9.4 written term by term: the oracle ``mirrorbits.selection`` is
checked against (``test_selection_fast.py``).

A straight reading of the specification: filter every mirror (rules 1 to 3 from
``prefilter``, rules 4 to 7 spelled out again here), score every accepted one, sort, draw.
Slow and obviously right; nothing here is used by the daemon.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from mirrorbits.float32 import f32
from mirrorbits.model import FileInfo, GeoRecord, Mirror
from mirrorbits.selection import Candidate, Prefiltered, Secure, Selection, SelectionOptions
from mirrorbits.selection.filter import Entry, prefilter

MAX_SELECTED = 5
SMALLEST_FLOAT32 = 2.0**-149
_HUNDRED = f32(100)


def codes_of(text: str) -> list[str]:
    return text.split()


def same_as(client_asn: int, mirror_asn: int) -> bool:
    return client_asn > 0 and client_asn == mirror_asn


def check_client(mirror: Mirror, client: GeoRecord, valid: bool) -> str:
    """Rules 4 to 7: restrictions by continent, country, AS and excluded countries."""
    if mirror.continent_only and (not valid or client.continent_code != mirror.continent_code):
        return "Continent only"
    if mirror.country_only and (
        not valid or client.country_code not in codes_of(mirror.country_codes)
    ):
        return "Country only"
    if mirror.as_only and (not valid or not same_as(client.as_num, mirror.asnum)):
        return "AS only"
    if valid and client.country_code in codes_of(mirror.excluded_country_codes):
        return "User's country restriction"
    return ""


def distance(client: GeoRecord, mirror: Mirror) -> float:
    """§9.1, float32 as in the reference: the formula, step by step."""
    rad = f32(math.pi / 180)
    lat1, lon1 = f32(client.latitude), f32(client.longitude)
    lat2, lon2 = f32(mirror.latitude), f32(mirror.longitude)
    half_dlat = f32(f32(f32(lat2 - lat1) * rad) / 2)
    half_dlon = f32(f32(f32(lon2 - lon1) * rad) / 2)
    a = (math.sin(half_dlat) * math.sin(half_dlat) + math.cos(f32(lat1 * rad))
         * math.cos(f32(lat2 * rad)) * math.sin(half_dlon) * math.sin(half_dlon))
    c = f32(2 * math.atan2(math.sqrt(a), math.sqrt(1 - a)))
    return f32(6371.0 * c)


def filter_candidates(
    pre: Prefiltered, client: GeoRecord
) -> tuple[list[Candidate], list[Candidate], float, float]:
    """``(accepted, excluded, closest, farthest)``, both lists in entry order."""
    valid = client.is_valid
    accepted: list[Candidate] = []
    excluded: list[Candidate] = []
    closest = farthest = 0.0
    for mirror, mirror_file, url, static_reason, _ in pre.entries:
        d = distance(client, mirror) if valid else 0.0
        candidate = Candidate(mirror, mirror_file, d, absolute_url=url)
        reason = static_reason or check_client(mirror, client, valid)
        if reason:
            candidate.exclude_reason = reason
            excluded.append(candidate)
            continue
        if not accepted or d < closest:
            closest = d
        if d > farthest:
            farthest = d
        accepted.append(candidate)
    return accepted, excluded, closest, farthest


def score_candidates(accepted: Sequence[Candidate], client: GeoRecord, closest: float,
                     farthest: float, weight_distribution_range: float) -> list[int]:
    """Set ``computed_score`` on each accepted candidate; return their weights."""
    if closest == 0:
        closest = SMALLEST_FLOAT32
    base = int(farthest)
    base_f = f32(base)
    radius = f32(closest * f32(weight_distribution_range))
    country = client.country_code
    weights: list[int] = []
    for cand in accepted:
        mirror = cand.mirror
        d = cand.distance
        s = base - int(d) + 1
        codes = codes_of(mirror.country_codes)
        primary = bool(codes) and codes[0] == country
        if d <= radius:
            bonus = f32(base_f - d)
            if not primary:
                bonus = f32(bonus / 2)
            s += int(bonus)
        elif primary:
            s += int(f32(base_f - f32(d * 5)))
        elif country in codes[1:]:
            s += int(f32(base_f - closest))
        if same_as(client.as_num, mirror.asnum):
            s += base // 2
        score = s + s * (mirror.score / 100) + 0.5
        cand.computed_score = int(max(score, 1.0))
        weights.append(cand.computed_score - base if cand.computed_score > base else 0)
    return weights


def percent(weight: int, total: int) -> float:
    return f32(f32(weight * 100) / f32(total))


def draw(pool: list[tuple[Candidate, int]], count: int, rng: random.Random,
         total: int) -> list[Candidate]:
    """``count`` candidates without replacement, each with probability weight/remaining."""
    drawn: list[Candidate] = []
    remaining = total
    for _ in range(count):
        pick = rng.randrange(remaining)
        cumulative = 0
        index = 0
        while pick >= cumulative + pool[index][1]:
            cumulative += pool[index][1]
            index += 1
        cand, weight = pool.pop(index)
        remaining -= weight
        cand.weight = percent(weight, total)
        drawn.append(cand)
    return drawn


def select(local: FileInfo, entries: Sequence[Entry], client: GeoRecord, secure: Secure,
           opts: SelectionOptions, rng: random.Random, mirrorlist: bool = False) -> Selection:
    """The whole selection of §9 for one request."""
    if local.mod_time_ns is None:
        return Selection()
    pre = prefilter(local, entries, secure, opts)
    accepted, excluded, closest, farthest = filter_candidates(pre, client)
    if not client.is_valid:
        rng.shuffle(accepted)
        if not mirrorlist:
            del accepted[MAX_SELECTED:]
        return Selection(accepted, excluded, 0)
    weights = score_candidates(accepted, client, closest, farthest,
                               opts.weight_distribution_range)
    total = sum(weights)
    pairs = sorted(zip(accepted, weights, strict=True), key=lambda p: -p[0].computed_score)
    ordered = [cand for cand, _ in pairs]
    selected = sum(1 for _, weight in pairs if weight)
    if mirrorlist:
        for cand, weight in pairs[:selected]:
            cand.weight = percent(weight, total)
        return Selection(ordered, excluded, selected)
    if selected == 1:
        ordered[0].weight = _HUNDRED
    if selected <= 1:
        return Selection(ordered, excluded, selected)
    return Selection(draw(pairs[:selected], min(MAX_SELECTED, selected), rng, total),
                     excluded, selected)
