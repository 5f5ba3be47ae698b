"""Fallback pseudo-mirrors and the *rank* order used for them (§8.7)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from mirrorbits.model import Fallback, GeoRecord, Mirror
from mirrorbits.selection.filter import ensure_scheme, same_asn, split_codes
from mirrorbits.selection.types import Candidate, Secure


def rank_key(cand: Candidate, client: GeoRecord) -> tuple[bool, bool, bool, float]:
    """Sort key for a valid client: same ASN, then same country, then continent, then distance.

    Same ASN uses :func:`same_asn` (fix of §20-13: ASN 0 is not "the same AS").
    """
    mirror = cand.mirror
    return (
        not same_asn(client.as_num, mirror.asnum),
        client.country_code not in split_codes(mirror.country_codes),
        client.continent_code != mirror.continent_code,
        cand.distance,
    )


def coin_flip_sort(items: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """Insertion sort whose comparator is a fair coin, as the reference orders fallbacks for a
    client without a location.  Not uniform: for 3 items the orders 0 1 2 and 1 0 2 come 1/4
    of the time each, the four others 1/8.  Expected cost O(n) coin flips (O(n^2) at worst).
    """
    result = list(items)
    for i in range(1, len(result)):
        j = i
        while j > 0 and rng.randrange(2) == 0:
            result[j], result[j - 1] = result[j - 1], result[j]
            j -= 1
    return result


def rank_order(
    candidates: Iterable[Candidate], client: GeoRecord, rng: random.Random
) -> list[Candidate]:
    """Order candidates by rank: :func:`rank_key` (stable) or, without location, coin flips."""
    if client.is_valid:
        return sorted(candidates, key=lambda cand: rank_key(cand, client))
    return coin_flip_sort(list(candidates), rng)


def normalize_url(url: str) -> str:
    """The URL with a trailing ``/`` (empty stays empty)."""
    return url if not url or url.endswith("/") else url + "/"


def fallback_candidates(
    fallbacks: Sequence[Fallback], client: GeoRecord, secure: Secure, rng: random.Random
) -> list[Candidate]:
    """Pseudo-mirrors for the configured fallbacks (IDs 0, -1, ...), in rank order.

    No health or file check applies; distance is 0.  A scheme-less URL is served over HTTPS
    unless the request demands plain HTTP.
    """
    scheme = "http" if secure is Secure.WITHOUT_TLS else "https"
    built = []
    for index, fallback in enumerate(fallbacks):
        url = normalize_url(fallback.url)
        mirror = Mirror(
            id=-index,
            name=f"fallback{index}",
            http_url=url,
            country_codes=fallback.country_code.upper(),
            continent_code=fallback.continent_code.upper(),
        )
        built.append(Candidate(mirror, None, 0.0, absolute_url=ensure_scheme(url, scheme)))
    return rank_order(built, client, rng)
