"""The selection (``redirect_order`` and ``select``) gives exactly what the term-by-term
reference of ``selection_reference.py`` gives.

Same mirrors in the same order with the same distances, scores, weights and exclusion
reasons, and the same calls to the random generator (checked through its state afterwards).
"""

from __future__ import annotations

import gc
import random
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirrorbits.model import FileInfo, GeoRecord
from mirrorbits.selection import (
    RedirectTable,
    Secure,
    SelectionMemo,
    SelectionOptions,
    prefilter,
    redirect_order,
    redirect_table,
    select,
)
from mirrorbits.selection import fast as fast_module
from mirrorbits.selection import memo as memo_module
from mirrorbits.selection.filter import Entry
from mirrorbits.selection.geo import Origin
from tests.unit import selection_reference as reference
from tests.unit.selection_support import S, mirror

T0 = 1_687_249_800 * S
PATH = "/dir/file.bin"
LOCAL = FileInfo(PATH, 100, T0)
FR_CLIENT = GeoRecord("FR", "EU", "Lyon", "France", 45.764, 4.8357, "OVH", 16276)
NO_LOCATION = GeoRecord(as_num=65211)
# A few cities, so that mirrors and clients often share a location.
PLACES = [(48.8582, 2.3387), (45.764, 4.8357), (52.52, 13.405), (40.4168, -3.7038),
          (51.5074, -0.1275), (-33.8688, 151.2093), (35.6762, 139.6503), (0.0, 0.0)]
COUNTRIES = ["FR", "DE", "ES", "GB", "JP"]
SHARED = SelectionMemo()  # one memo for every table, as the web context has


def expected(entries: Sequence[Entry], client: GeoRecord, secure: Secure, wdr: float,
             seed: int, limit: int) -> tuple[list[tuple[int, float]], object]:
    """The reference's first ``limit`` mirrors as (entry index, distance), and the rng state."""
    opts = SelectionOptions(weight_distribution_range=wdr)
    rng = random.Random(seed)
    sel = reference.select(LOCAL, entries, client, secure, opts, rng)
    position = {id(entry[0]): index for index, entry in enumerate(entries)}
    return [(position[id(c.mirror)], c.distance) for c in sel.mirrors[:limit]], rng.getstate()


def table_of(entries: Sequence[Entry], secure: Secure, wdr: float,
             memo: SelectionMemo | None = SHARED) -> RedirectTable:
    opts = SelectionOptions(weight_distribution_range=wdr)
    return redirect_table(prefilter(LOCAL, entries, secure, opts), memo)


def fast(table: RedirectTable, client: GeoRecord, wdr: float, seed: int,
         limit: int) -> tuple[list[tuple[int, float]], object]:
    rng = random.Random(seed)
    return redirect_order(table, client, wdr, rng, limit), rng.getstate()


def assert_same(entries: Sequence[Entry], client: GeoRecord, *, secure: Secure = Secure.UNDEFINED,
                wdr: float = 1.5, seed: int = 1, limit: int = 11,
                memo: SelectionMemo | None = SHARED) -> list[tuple[int, float]]:
    """``redirect_order`` and ``select`` (answer and mirrorlist) against the reference."""
    table = table_of(entries, secure, wdr, memo)
    want = expected(entries, client, secure, wdr, seed, limit)
    got = fast(table, client, wdr, seed, limit)
    assert got[0] == want[0]
    assert [d.hex() for _, d in got[0]] == [d.hex() for _, d in want[0]]  # bit for bit
    assert got[1] == want[1]
    opts = SelectionOptions(weight_distribution_range=wdr)
    for mirrorlist in (False, True):
        rng, reference_rng = random.Random(seed), random.Random(seed)
        answer = select(LOCAL, (), client, secure, opts, rng, mirrorlist, table=table)
        assert answer == reference.select(LOCAL, entries, client, secure, opts, reference_rng,
                                          mirrorlist)
        assert rng.getstate() == reference_rng.getstate()
    return got[0]


# --- random inputs ------------------------------------------------------------------------------

location = st.one_of(
    st.sampled_from(PLACES),
    # Within a few hundred metres of a city: distances under 1 km.
    st.builds(lambda p, delta: (p[0] + delta, p[1]), st.sampled_from(PLACES),
              st.sampled_from([0.001, 0.004, 0.008, 0.02])),
    st.tuples(st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False)),
)


def random_mirror(ident: int, seed: int, lat: float, lon: float) -> Entry:
    """A mirror with random fields (one hypothesis draw per mirror keeps examples fast)."""
    r = random.Random(seed)
    m = mirror(
        ident,
        latitude=lat, longitude=lon,
        country_codes=" ".join(r.choices(COUNTRIES, k=r.choice([0, 1, 1, 2, 3]))),
        continent_code=r.choice(["EU", "AS", ""]),
        asnum=r.choice([0, 100, 200, 16276, 1000 + ident]),
        score=r.choice([0, 0, 0, 10, 20, 50, -10, -50, 200, -200, 1]),
        enabled=r.random() < 0.9,
        http_url=r.choice([f"http://m{ident}/", f"https://m{ident}/", f"m{ident}/"]),
        http_up=r.random() < 0.9,
        https_up=r.random() < 0.9,
        continent_only=r.random() < 0.1,
        country_only=r.random() < 0.1,
        as_only=r.random() < 0.05,
        excluded_country_codes=r.choice(["", "", "", "", "FR", "DE ES"]),
    )
    return m, FileInfo(PATH, r.choice([100, 100, 100, 99]), T0)


@st.composite
def mirrors_and_files(draw: st.DrawFn) -> list[Entry]:
    count = draw(st.integers(1, 40))
    return [random_mirror(ident, draw(st.integers(0, 2**32 - 1)), *draw(location))
            for ident in range(1, count + 1)]


@st.composite
def clients(draw: st.DrawFn, entries: list[Entry]) -> GeoRecord:
    if draw(st.integers(0, 9)) == 0:
        return GeoRecord(as_num=draw(st.sampled_from([0, 16276])))
    if draw(st.booleans()):  # at a mirror's exact location
        m = draw(st.sampled_from(entries))[0]
        lat, lon = m.latitude, m.longitude
    else:
        lat, lon = draw(location)
    return GeoRecord(
        draw(st.sampled_from(COUNTRIES)), draw(st.sampled_from(["EU", "AS", ""])), "", "",
        lat, lon, "", draw(st.sampled_from([0, 100, 200, 16276, 1001, 1002])),
    )


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_same_as_the_reference(data: st.DataObject) -> None:
    entries = data.draw(mirrors_and_files())
    client = data.draw(clients(entries))
    assert_same(
        entries, client,
        secure=data.draw(st.sampled_from(list(Secure))),
        wdr=data.draw(st.sampled_from([1.5, 1.0, 2.0, 0.0, 0.5, 10.0])),
        seed=data.draw(st.integers(0, 2**32)),
        limit=data.draw(st.integers(1, 12)),
    )


# --- explicit cases -----------------------------------------------------------------------------

def plain(count: int, **changes: object) -> list[Entry]:
    return [(mirror(i, **changes), FileInfo(PATH, 100, T0)) for i in range(1, count + 1)]


def test_unlocated_client_shuffles_and_cuts_to_five() -> None:
    entries = [*plain(9), (mirror(10, country_only=True), FileInfo(PATH, 100, T0))]
    got = assert_same(entries, NO_LOCATION, seed=7)
    assert len(got) == 5
    assert all(distance == 0.0 for _, distance in got)
    assert 9 not in [index for index, _ in got]  # country-only: never for an unlocated client
    assert len(assert_same(entries, NO_LOCATION, seed=7, limit=2)) == 2


def test_exactly_one_weighted_gives_the_full_order() -> None:
    # Same location as the client (weighted), the others far away and unweighted.
    entries = [(mirror(1, latitude=45.764, longitude=4.8357), FileInfo(PATH, 100, T0))]
    for ident, (lat, lon) in enumerate(PLACES[2:7], start=2):
        entries.append((mirror(ident, latitude=lat, longitude=lon, country_codes="JP"),
                        FileInfo(PATH, 100, T0)))
    client = GeoRecord("GB", "EU", "", "", 45.764, 4.8357, "", 0)
    got = assert_same(entries, client, limit=12)
    assert got[0] == (0, 0.0)
    assert [index for index, _ in got] == [0, 3, 2, 1, 5, 4]  # then by distance from Lyon
    assert [d for _, d in got] == sorted(d for _, d in got)


def test_no_weighted_mirror_keeps_score_order() -> None:
    # Far from the client, not in its country or AS, no positive score, and a zero weight
    # distribution range: nobody is weighted, the answer is the score order, no random draw.
    scores = [0, -10, 0, -50, 0]
    entries = [(mirror(i, latitude=lat, longitude=lon, country_codes="JP", asnum=0,
                       score=score), FileInfo(PATH, 100, T0))
               for i, ((lat, lon), score) in enumerate(zip(PLACES[:5], scores, strict=True),
                                                       start=1)]
    client = GeoRecord("GB", "EU", "", "", 60.0, 20.0, "", 0)
    got = assert_same(entries, client, wdr=0.0, limit=12)
    assert len(got) == 5
    rng = random.Random(1)
    redirect_order(table_of(entries, Secure.UNDEFINED, 0.0), client, 0.0, rng, 3)
    assert rng.getstate() == random.Random(1).getstate()


def test_draw_among_seven_weighted() -> None:
    entries: list[Entry] = [
        (mirror(i, latitude=48.8582 + i / 100, country_codes="FR", score=10 * (i % 3)),
         FileInfo(PATH, 100, T0)) for i in range(1, 8)]
    entries += plain(3, latitude=-33.8688, longitude=151.2093, country_codes="JP")
    for seed in range(20):
        got = assert_same(entries, FR_CLIENT, seed=seed)
        assert len(got) == 5  # five drawn among the seven weighted
        assert {index for index, _ in got} <= set(range(7))


def test_no_usable_mirror_gives_nothing() -> None:
    entries = plain(3, enabled=False)
    assert assert_same(entries, FR_CLIENT) == []
    assert assert_same(entries, NO_LOCATION) == []
    only_de = [(mirror(1, country_only=True, country_codes="DE"), FileInfo(PATH, 100, T0))]
    assert assert_same(only_de, FR_CLIENT) == []


def test_select_builds_its_own_table_when_given_none() -> None:
    entries = [(mirror(i, latitude=lat, longitude=lon), FileInfo(PATH, 100, T0))
               for i, (lat, lon) in enumerate(PLACES, start=1)]
    opts = SelectionOptions()
    pre = prefilter(LOCAL, entries, Secure.UNDEFINED, opts)
    want = reference.select(LOCAL, entries, FR_CLIENT, Secure.UNDEFINED, opts,
                            random.Random(3), mirrorlist=True)
    assert select(LOCAL, entries, FR_CLIENT, Secure.UNDEFINED, opts, random.Random(3),
                  mirrorlist=True) == want
    assert select(LOCAL, (), FR_CLIENT, Secure.UNDEFINED, opts, random.Random(3),
                  mirrorlist=True, pre=pre) == want
    assert_same(entries, FR_CLIENT, memo=None)


@pytest.mark.parametrize("limit", [1, 2])
def test_memo_starting_over_never_mixes_locations(monkeypatch: pytest.MonkeyPatch,
                                                  limit: int) -> None:
    """With every memo map holding one or two items, old tables miss and recompute: the
    answers stay those of the reference."""
    for name in ("POINT_LIMIT", "ORIGIN_LIMIT", "DISTANCE_LIMIT", "LIMIT_LIMIT", "FACT_LIMIT",
                 "RANKING_LIMIT"):
        monkeypatch.setattr(memo_module, name, limit)
    memo = SelectionMemo()
    tables = []
    for shift in range(4):
        entries = [(mirror(i, latitude=lat + shift, longitude=lon, score=10 * (i % 3)),
                    FileInfo(PATH, 100, T0))
                   for i, (lat, lon) in enumerate(PLACES, start=1)]
        tables.append((entries, table_of(entries, Secure.UNDEFINED, 1.5, memo)))
    for round_ in range(3):
        for entries, table in tables:
            for lat, lon in PLACES[:4]:
                client = GeoRecord("FR", "EU", "", "", lat + round_, lon, "", 16276)
                want = expected(entries, client, Secure.UNDEFINED, 1.5, round_, 11)
                assert fast(table, client, 1.5, round_, 11) == want
                assert len(memo.rankings) <= limit


def test_a_client_location_measures_every_known_mirror_location_at_once() -> None:
    """The first distances of a client location cover every mirror location the memo has
    interned (the tables built at start-up), so its first requests for other files, on other
    mirrors, compute none; the answers stay the reference's."""
    memo = SelectionMemo()
    tables = []
    for shift in range(3):
        entries = [(mirror(i, latitude=lat + shift, longitude=lon, score=10 * (i % 3)),
                    FileInfo(PATH, 100, T0)) for i, (lat, lon) in enumerate(PLACES, start=1)]
        tables.append((entries, table_of(entries, Secure.UNDEFINED, 1.5, memo)))
    client = GeoRecord("FR", "EU", "", "", 48.85, 2.35, "", 16276)
    for number, (entries, table) in enumerate(tables):
        want = expected(entries, client, Secure.UNDEFINED, 1.5, 1, 11)
        assert fast(table, client, 1.5, 1, 11) == want
        if number == 0:
            known = dict(memo.origins[(client.latitude, client.longitude)][1])
            assert len(known) == 3 * len(PLACES)  # the other tables' locations too
    assert memo.origins[(client.latitude, client.longitude)][1] == known


def drawn_and_ordered() -> list[tuple[list[Entry], float]]:
    """Two files with their weight distribution range: seven weighted mirrors near Paris
    (a French client draws among them) and five far apart with none weighted (an order)."""
    weighted = [(mirror(i, latitude=48.8582 + i / 100, country_codes="FR", score=10 * (i % 3)),
                 FileInfo(PATH, 100, T0)) for i in range(1, 8)]
    weighted += plain(3, latitude=-33.8688, longitude=151.2093, country_codes="JP")
    far: list[Entry] = [(mirror(i, latitude=lat, longitude=lon, country_codes="JP", asnum=0),
                         FileInfo(PATH, 100, T0))
                        for i, (lat, lon) in enumerate(PLACES[:5], start=1)]
    return [(weighted, 1.5), (far, 0.0)]


def test_a_remembered_ranking_draws_what_a_fresh_one_draws() -> None:
    """The second client of a place asking for a file draws from the ranking the first one
    left in the memo: the same mirrors, distances and random calls as the reference, with a
    weighted draw and without one; another place or AS is ranked on its own."""
    memo = SelectionMemo()
    for entries, wdr in drawn_and_ordered():
        table = table_of(entries, Secure.UNDEFINED, wdr, memo)
        clients = [FR_CLIENT, GeoRecord("FR", "EU", "Lyon", "France", 45.764, 4.8357, "", 0),
                   GeoRecord("GB", "EU", "", "", 60.0, 20.0, "", 0)]
        for seed in range(6):
            for client in clients:
                want = expected(entries, client, Secure.UNDEFINED, wdr, seed, 11)
                assert fast(table, client, wdr, seed, 11) == want
                assert fast(table, client, wdr, seed, 11) == want
    assert len(memo.rankings) == 6


def test_remembered_rankings_leave_the_collector_after_one_young_collection() -> None:
    """What the first requests keep (a ranking per file and place, with or without a draw,
    and its key) is a flat tuple of numbers and strings: the first young collection stops
    tracking it, so under the first load it is never promoted nor scanned again (the middle
    collections over kept rankings were the first seconds' stalls)."""
    memo = SelectionMemo()
    for entries, wdr in drawn_and_ordered():
        fast(table_of(entries, Secure.UNDEFINED, wdr, memo), FR_CLIENT, wdr, 1, 11)
    assert len(memo.rankings) == 2
    gc.collect(0)
    kept = [*memo.rankings.items()]
    assert {bool(ranking[0]) for _, ranking in kept} == {True, False}  # a draw and an order
    tracked = [item for item in kept if gc.is_tracked(item[0]) or gc.is_tracked(item[1])]
    assert tracked == []


# --- the ranking of a new (file, place) against the scores it is made of ------------------------

def ranking_from_scores(table: RedirectTable, client: GeoRecord, wdr: float,
                        limit: int) -> tuple[str, list[tuple[int, str]], list[int]]:
    """The ranking spelled out from ``_scores`` and ``_keys`` (the full view's own arithmetic):
    the pool sorted by (key, slot), else the first ``limit`` accepted slots by key; distances
    as hex (bit for bit).  What any faster ``_ranking`` must give (one rewrite was tried:
    docs/performance.md, "The first seconds after the fill")."""
    distances, excluded, keys, base = fast_module._scores(table, client, wdr)
    if keys is None:
        return "order", [], []
    indices = table.indices
    pool = sorted(pair for pair in keys if pair[0] <= 0)
    if len(pool) >= 2:
        return ("draw", [(indices[slot], distances[slot].hex()) for _, slot in pool],
                [1 - key for key, _ in pool])
    order = fast_module._keys(table, distances, excluded, keys, base)
    ranked = sorted(range(len(order)), key=order.__getitem__)[:limit]
    return "order", [(indices[slot], distances[slot].hex()) for slot in ranked
                     if slot not in excluded], []


def ranking_now(table: RedirectTable, client: GeoRecord, wdr: float,
                limit: int) -> tuple[str, list[tuple[int, str]], list[int]]:
    ranking = fast_module._ranking(table, client, wdr, limit)
    total, weights = ranking[0], ranking[3::3]
    entries = list(zip(ranking[1::3], ranking[2::3], strict=True))
    if total:
        assert total == sum(weights)
        return "draw", [(index, d.hex()) for index, d in entries], list(weights)
    assert not any(weights)
    return "order", [(index, d.hex()) for index, d in entries], []


def test_a_new_ranking_is_what_the_scores_give() -> None:
    """Thousands of random files (1 to 60 mirrors: shared and near-identical locations,
    restrictions, every kind of mirror score) and places (at a mirror, within a few hundred
    metres, anywhere; every country, continent and AS the mirrors name): the ranking a
    redirect computes for a new (file, place) is, bit for bit, what ``_scores`` and ``_keys``
    give, and the draw from it takes the same random numbers as the reference's (a guard for
    rewriting ``_ranking`` for speed)."""
    rng = random.Random(20261205)
    memo = SelectionMemo()
    cities = [*PLACES, *((rng.uniform(-80, 80), rng.uniform(-180, 180)) for _ in range(12))]
    checked = {"draw": 0, "order": 0}
    for case in range(1500):
        entries = []
        for ident in range(1, rng.randint(1, 60) + 1):
            lat, lon = rng.choice(cities)
            if rng.random() < 0.3:
                lat += rng.choice([0.001, 0.004, 0.008, 0.02, 0.3])
            entries.append(random_mirror(ident, rng.getrandbits(32), lat, lon))
        wdr = rng.choice([1.5, 1.5, 1.5, 1.0, 2.0, 0.0, 0.5, 10.0])
        secure = rng.choice(list(Secure))
        table = table_of(entries, secure, wdr, memo)
        if not table.indices:
            continue
        for _ in range(4):
            if rng.random() < 0.4:
                m = rng.choice(entries)[0]
                lat, lon = m.latitude, m.longitude
            else:
                lat, lon = rng.choice(cities)
                lat += rng.choice([0.0, 0.0, 0.002, 0.05])
            client = GeoRecord(rng.choice(COUNTRIES), rng.choice(["EU", "AS", ""]), "", "",
                               lat, lon, "", rng.choice([0, 100, 200, 16276, 1001, 1002]))
            limit = rng.choice([1, 2, 5, 11, 12, 60])
            want = ranking_from_scores(table, client, wdr, limit)
            assert ranking_now(table, client, wdr, limit) == want, (case, client)
            checked[want[0]] += 1
            if case % 10 == 0:  # the draw itself, against the term-by-term reference
                seed = rng.getrandbits(32)
                assert fast(table, client, wdr, seed, limit) == expected(
                    entries, client, secure, wdr, seed, limit)
    assert checked["draw"] > 1000 and checked["order"] > 1000, checked


def test_a_positive_score_at_its_exact_limit_is_weighted_as_the_scores_say() -> None:
    """Mirror scores whose bonus-less score lands exactly on, just under and just over the
    base (s + s * ratio + 0.5 == base + 1 for ratio 0.5): the ranking weights them as
    ``_scores`` and the term-by-term reference do, at the boundary (the distance limits of
    ``SelectionMemo.weighted_below`` are exact there)."""
    client = GeoRecord("GB", "EU", "", "", 0.0, 0.0, "", 0)
    memo = SelectionMemo()

    def distance_at(lat: float) -> float:
        return Origin(0.0, 0.0).distance_to(lat, 0.0)

    far_lon = 60.0
    while (2 * (int(Origin(0.0, 0.0).distance_to(0.0, far_lon)) + 1) - 1) % 3:
        far_lon += 0.01
    b1 = int(Origin(0.0, 0.0).distance_to(0.0, far_lon)) + 1
    s_exact = (2 * b1 - 1) // 3  # s + 0.5 * s + 0.5 == b1
    kinds = []
    for s in (s_exact - 1, s_exact, s_exact + 1):
        low, high = 0.0, far_lon  # the latitude where int(distance) becomes b1 - s
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if distance_at(middle) < b1 - s else (low, middle)
        entries = [(mirror(1, latitude=0.0, longitude=far_lon, country_codes="JP", asnum=0),
                    FileInfo(PATH, 100, T0)),
                   (mirror(2, latitude=high, longitude=0.0, country_codes="JP", asnum=0,
                           score=50), FileInfo(PATH, 100, T0)),
                   (mirror(3, latitude=0.0, longitude=0.0, country_codes="JP", asnum=0),
                    FileInfo(PATH, 100, T0))]  # at the client: weighted
        table = table_of(entries, Secure.UNDEFINED, 0.0, memo)
        assert int(distance_at(high)) == b1 - s
        want = ranking_from_scores(table, client, 0.0, 11)
        assert ranking_now(table, client, 0.0, 11) == want
        kinds.append(want[0])
        for seed in range(3):  # and what the term-by-term reference draws
            assert fast(table, client, 0.0, seed, 11) == expected(
                entries, client, Secure.UNDEFINED, 0.0, seed, 11)
    assert kinds == ["order", "draw", "draw"]  # weighted from the limit on


def test_weighted_distance_limits_are_where_the_score_passes_the_base() -> None:
    """For every base up to 20,016 km (one in 7, and all up to 400) and mirror scores from 1 to
    300: a bonus-less mirror is weighted exactly when its distance is under the limit."""
    memo = SelectionMemo()
    ratios = (0.01, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0, 3.0)

    def weighted(s: int, ratio: float, base: int) -> bool:
        return int(max(s + s * ratio + 0.5, 1.0)) > base

    for base in [*range(401), *range(401, 20_017, 7)]:
        limits = memo.weighted_below(base, base, ratios)
        for ratio, limit in zip(ratios, limits, strict=True):
            s_min = base + 2 - int(limit)  # the least s weighted
            assert 1 <= s_min <= base + 1
            assert weighted(s_min, ratio, base)
            assert s_min == 1 or not weighted(s_min - 1, ratio, base), (base, ratio)
