"""Mirror selection (§9) and fallbacks (§8.7): filter, scores, draws, rank order.

The conformance tables at the end copy numbers recorded from the reference
(``conformance/expected/matrix``); randomness is checked with seeded or scripted generators.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Sequence

import pytest
from attrs import evolve

from mirrorbits.float32 import f32, format_f32
from mirrorbits.model import Fallback, FileInfo, GeoRecord, Mirror, OutdatedRule
from mirrorbits.selection import (
    Candidate,
    Secure,
    Selection,
    SelectionOptions,
    distance_km,
    fallback_candidates,
    rank_order,
    select,
)
from mirrorbits.selection.geo import Origin, Point
from tests.unit.selection_support import S, mirror

T0 = 1_687_249_800 * S  # 2023-06-20 08:30:00 UTC
PATH = "/dir/file.bin"
LOCAL = FileInfo(PATH, 100, T0)
OPTS = SelectionOptions()
FR_CLIENT = GeoRecord("FR", "EU", "Lyon", "France", 45.764, 4.8357, "OVH", 16276)
NO_LOCATION = GeoRecord(as_num=65211)


def same_file(size: int = 100, mtime: int | None = T0) -> FileInfo:
    return FileInfo(PATH, size, mtime)


def reason_of(m: Mirror, file: FileInfo | None = None, *, local: FileInfo = LOCAL,
              client: GeoRecord = FR_CLIENT, secure: Secure = Secure.UNDEFINED,
              opts: SelectionOptions = OPTS) -> tuple[str, str]:
    """(exclude reason, absolute URL) of one mirror; reason "" when accepted."""
    entry = (m, same_file() if file is None else file)
    sel = select(local, [entry], client, secure, opts, random.Random(1), mirrorlist=True)
    cand = (sel.mirrors or sel.excluded)[0]
    return cand.exclude_reason, cand.absolute_url


def page(entries: Sequence[tuple[Mirror, FileInfo | None]], client: GeoRecord) -> Selection:
    """The mirrorlist selection: every mirror, accepted (by score) or excluded (entry order)."""
    return select(LOCAL, entries, client, Secure.UNDEFINED, OPTS, random.Random(1),
                  mirrorlist=True)


# --- distance (§9.1) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("points", "text"), [
    ((45.764, 4.8357, 48.8582, 2.3387), "392.14078"),  # Lyon -> Paris (spec §9.1)
    ((37.3891, -5.9845, 40.4168, -3.7038), "390.2102"),  # conformance: seville -> madrid
    ((38.7223, -9.1393, 40.4168, -3.7038), "502.4472"),  # lisbon -> madrid
    ((49.2827, -123.1207, -23.5505, -46.6333), "11051.396"),  # vancouver -> saopaulo
    ((-6.2088, 106.8456, 1.3521, 103.8198), "905.3539"),  # jakarta -> singapore
    ((19.4326, -99.1332, 39.4699, -0.3763), "9365.171"),  # mexico -> valencia
])
def test_distance_float32_digits(points: tuple[float, float, float, float], text: str) -> None:
    assert format_f32(distance_km(*points)) == text


def test_distance_reference_test_values() -> None:
    paris = (48.8566, 2.3522)
    assert int(distance_km(*paris, 52.516667, 13.388889)) == 876  # Berlin
    assert int(distance_km(*paris, 51.5074, 0.1275)) == 334  # "London" at +0.1275
    assert int(distance_km(*paris, 40.7127, 74.0059)) == 5514
    assert distance_km(*paris, *paris) == 0


def test_distances_to_many_points_gives_the_bits_of_one_at_a_time() -> None:
    rng = random.Random(13)
    corners = [(0.0, 0.0), (90.0, 180.0), (-90.0, -180.0), (-0.0, 1e-45), (45.764, 4.8357)]
    for _ in range(300):
        origin = Origin(rng.uniform(-90, 90), rng.uniform(-180, 180))
        places = [*corners, (origin.lat, origin.lon)]
        places += [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(60)]
        together = origin.distances_to([Point(lat, lon) for lat, lon in places])
        alone = [origin.distance_to(lat, lon) for lat, lon in places]
        assert [struct.pack("<d", d) for d in together] == [struct.pack("<d", d) for d in alone]


# --- filter rules (§9.2; the reference's selection_test.go matrix) ----------------------------

def test_disabled_has_no_url() -> None:
    assert reason_of(mirror(enabled=False, http_up=False)) == ("Disabled", "")


DOWN = {"http_up": False, "https_up": False}


@pytest.mark.parametrize(("secure", "url", "reason", "absolute"), [
    (Secure.WITH_TLS, "http://h/", "Not HTTPS", "http://h/"),
    (Secure.WITH_TLS, "https://h/", "Down", "https://h/"),
    (Secure.WITH_TLS, "h/", "Down", "https://h/"),
    (Secure.WITHOUT_TLS, "http://h/", "Down", "http://h/"),
    (Secure.WITHOUT_TLS, "https://h/", "Not HTTP", "https://h/"),
    (Secure.WITHOUT_TLS, "h/", "Down", "http://h/"),
    (Secure.UNDEFINED, "http://h/", "Down / Not HTTPS", "http://h/"),
    (Secure.UNDEFINED, "https://h/", "Not HTTP / Down", "https://h/"),
    (Secure.UNDEFINED, "h/", "Down", "http://h/"),
])
def test_protocol_matrix_all_down(secure: Secure, url: str, reason: str, absolute: str) -> None:
    assert reason_of(mirror(http_url=url, **DOWN), secure=secure) == (reason, absolute)


@pytest.mark.parametrize(("secure", "url", "absolute"), [
    (Secure.UNDEFINED, "h/", "https://h/"),  # scheme-less prefers HTTPS when it is up
    (Secure.WITHOUT_TLS, "h/", "http://h/"),
    (Secure.WITH_TLS, "h/", "https://h/"),
    (Secure.UNDEFINED, "http://h/", "http://h/"),
    (Secure.UNDEFINED, "https://h/", "https://h/"),
])
def test_protocol_accepted_urls(secure: Secure, url: str, absolute: str) -> None:
    assert reason_of(mirror(http_url=url), secure=secure) == ("", absolute)


def test_protocol_uses_stored_down_reasons() -> None:
    https_down = mirror(http_url="h/pub/", https_up=False, https_down_reason="Unreachable")
    assert reason_of(https_down) == ("", "http://h/pub/")  # conformance: valencia
    assert reason_of(https_down, secure=Secure.WITH_TLS) == ("Unreachable", "https://h/pub/")
    http_down = mirror(http_url="http://h/", http_up=False, https_up=False,
                       http_down_reason="Unreachable")
    assert reason_of(http_down) == ("Unreachable / Not HTTPS", "http://h/")  # reykjavik
    assert reason_of(http_down, secure=Secure.WITHOUT_TLS)[0] == "Unreachable"
    assert reason_of(http_down, secure=Secure.WITH_TLS)[0] == "Not HTTPS"
    both = mirror(http_url="h/", http_up=False, https_up=False, http_down_reason="Timeout",
                  https_down_reason="Unreachable")
    assert reason_of(both)[0] == "Timeout / Unreachable"


def test_size_and_mtime_checks() -> None:
    m = mirror()
    assert reason_of(m, same_file(size=99))[0] == "File size mismatch"
    assert reason_of(m, same_file(mtime=T0 + 10 * S))[0] == "Mod time mismatch (diff: -10s)"
    assert reason_of(m, same_file(mtime=T0 - 10 * S))[0] == "Mod time mismatch (diff: 10s)"
    assert reason_of(m, same_file(mtime=None))[0] == ""  # unknown mirror mtime: never excluded
    # No FILEINFO at all: size 0, zero mtime.
    sel = page([(m, None)], FR_CLIENT)
    assert (sel.mirrors, sel.excluded[0].exclude_reason) == ([], "File size mismatch")
    empty = FileInfo(PATH, 0, T0)
    assert reason_of(m, FileInfo(PATH), local=empty)[0] == ""


def test_mtime_precision_truncation() -> None:
    local = FileInfo(PATH, 100, T0 + 123_456_789)  # fractional local mtime, whole-second listing
    assert reason_of(mirror(), same_file(), local=local)[0] == ""
    assert reason_of(mirror(last_successful_sync_precision=0), same_file(), local=local)[0] == (
        "Mod time mismatch (diff: 123.456789ms)")
    minute = mirror(last_successful_sync_precision=60 * S)
    # Same minute once truncated: a copy listed 59 s "newer" is not a mismatch.
    assert reason_of(minute, same_file(mtime=T0 + 59 * S), local=local)[0] == ""


@pytest.mark.parametrize(("rules", "same_size", "diff_size"), [
    ((), "Mod time mismatch (diff: 1m40s)", "File size mismatch"),
    ((OutdatedRule("/dir/", 1),), "Mod time mismatch (diff: 1m40s)",
     "Mod time mismatch (diff: 1m40s)"),
    ((OutdatedRule("/other/", 2),), "Mod time mismatch (diff: 1m40s)", "File size mismatch"),
    ((OutdatedRule("/dir/", 2),), "", ""),
    ((OutdatedRule("/other/", 0), OutdatedRule("", 2)), "", ""),  # empty prefix matches all
    ((OutdatedRule("/dir/", 0), OutdatedRule("", 2)), "Mod time mismatch (diff: 1m40s)",
     "Mod time mismatch (diff: 1m40s)"),  # first matching rule wins
])
def test_allow_outdated_files(rules: tuple[OutdatedRule, ...], same_size: str,
                              diff_size: str) -> None:
    opts = SelectionOptions(allow_outdated_files=rules)
    old = T0 - 100 * S  # the mirror's copy is 100 s older
    assert reason_of(mirror(), same_file(mtime=old), opts=opts)[0] == same_size
    assert reason_of(mirror(), same_file(size=5, mtime=old), opts=opts)[0] == diff_size
    assert reason_of(mirror(), same_file(mtime=T0 + S), opts=opts)[0] == (
        "Mod time mismatch (diff: -1s)")  # newer copies are never tolerated


def test_a_newer_rule_accepts_newer_copies_of_the_same_size() -> None:
    # upstream #199: mirrors that sync on their own keep times of their own, later than the
    # origin's: every one was excluded with "Mod time mismatch"
    opts = SelectionOptions(allow_outdated_files=(OutdatedRule("/", 10, newer=True),))
    assert reason_of(mirror(), same_file(mtime=T0 + 86400 * S), opts=opts)[0] == ""
    assert reason_of(mirror(), same_file(size=5, mtime=T0 + S), opts=opts)[0] == (
        "File size mismatch")
    assert reason_of(mirror(), same_file(size=5, mtime=T0 - S), opts=opts)[0] == ""  # as before
    assert reason_of(mirror(), same_file(mtime=T0 - 11 * 60 * S), opts=opts)[0] == (
        "Mod time mismatch (diff: 11m0s)")
    other = SelectionOptions(allow_outdated_files=(OutdatedRule("/pub/", 10, newer=True),))
    assert reason_of(mirror(), same_file(mtime=T0 + S), opts=other)[0] == (
        "Mod time mismatch (diff: -1s)")


def test_fix_timezone_offsets() -> None:
    shifted = mirror(tz_offset_ms=3_600_000)
    file = same_file(mtime=T0 - 3600 * S)
    assert reason_of(shifted, file)[0] == "Mod time mismatch (diff: 1h0m0s)"
    fixed = SelectionOptions(fix_timezone_offsets=True)
    assert reason_of(shifted, file, opts=fixed)[0] == ""


@pytest.mark.parametrize(("changes", "client", "reason"), [
    ({"continent_only": True}, FR_CLIENT, ""),
    ({"continent_only": True, "continent_code": "NA"}, FR_CLIENT, "Continent only"),
    ({"continent_only": True}, NO_LOCATION, "Continent only"),
    ({"country_only": True, "country_codes": "DE FR"}, FR_CLIENT, ""),
    ({"country_only": True, "country_codes": "DE"}, FR_CLIENT, "Country only"),
    ({"country_only": True}, NO_LOCATION, "Country only"),
    ({"as_only": True, "asnum": 16276}, FR_CLIENT, ""),
    ({"as_only": True}, FR_CLIENT, "AS only"),
    ({"as_only": True, "asnum": 65211}, NO_LOCATION, "AS only"),
    # §20-13 fix: an unknown ASN is not "the same AS" as another unknown ASN.
    ({"as_only": True, "asnum": 0}, GeoRecord("FR", "EU", as_num=0), "AS only"),
    ({"excluded_country_codes": "BE FR"}, FR_CLIENT, "User's country restriction"),
    ({"excluded_country_codes": "BE"}, FR_CLIENT, ""),
    ({"excluded_country_codes": "FR"}, NO_LOCATION, ""),
    # Rules apply in order: the first failing one is reported.
    ({"enabled": False, "http_up": False}, FR_CLIENT, "Disabled"),
    ({"http_url": "m.example/", "http_up": False, "https_up": False, "continent_only": True,
      "continent_code": "NA"}, FR_CLIENT, "Down"),
    ({"continent_only": True, "continent_code": "NA", "country_only": True}, FR_CLIENT,
     "Continent only"),
])
def test_client_restrictions(changes: dict[str, object], client: GeoRecord, reason: str) -> None:
    assert reason_of(mirror(**changes), client=client)[0] == reason


def test_distances_and_entry_order_of_the_excluded() -> None:
    entries = [
        (mirror(1, latitude=52.52, longitude=13.405), same_file()),  # Berlin 974.8
        (mirror(2, enabled=False, latitude=45.764, longitude=4.8357), same_file()),  # 0 km
        (mirror(3), same_file()),  # Paris 392.1
        (mirror(4, latitude=40.7128, longitude=-74.006), same_file(size=1)),  # excluded
        (mirror(5, latitude=40.7128, longitude=-74.006), same_file()),  # New York 6146.1
    ]
    sel = page(entries, FR_CLIENT)
    assert [c.mirror.id for c in sel.mirrors] == [3, 1, 5]  # by score: nearest first
    assert [(c.mirror.id, c.exclude_reason) for c in sel.excluded] == [
        (2, "Disabled"), (4, "File size mismatch")]
    assert [format_f32(c.distance) for c in sel.mirrors + sel.excluded] == [
        "392.14078", "974.80493", "6146.112", "0", "6146.112"]
    assert all(c.computed_score == 0 and c.weight == 0 for c in sel.excluded)
    assert page([], FR_CLIENT) == Selection([], [], 0)


def test_invalid_client_gets_no_distance() -> None:
    sel = page([(mirror(), same_file()), (mirror(2, enabled=False), same_file())], NO_LOCATION)
    assert [(c.distance, c.computed_score) for c in sel.mirrors + sel.excluded] == [
        (0.0, 0), (0.0, 0)]


# --- scores, weights and draws (§9.3, §9.4) ---------------------------------------------------

PARIS = mirror(1, asnum=16276)
BERLIN = mirror(2, latitude=52.52, longitude=13.405, country_codes="DE", score=20)
NEW_YORK = mirror(3, latitude=40.7128, longitude=-74.006, country_codes="US",
                  continent_code="NA")
WORKED = [(PARIS, same_file()), (BERLIN, same_file()), (NEW_YORK, same_file())]


def names(cands: Sequence[Candidate]) -> list[str]:
    return [c.mirror.name for c in cands]


def test_worked_example_scores_and_mirrorlist() -> None:
    sel = select(LOCAL, WORKED, FR_CLIENT, Secure.UNDEFINED, OPTS, random.Random(1),
                 mirrorlist=True)
    assert [(c.mirror.name, c.computed_score) for c in sel.mirrors] == [
        ("m1", 14581), ("m2", 6208), ("m3", 1)]
    assert sel.weighted == 2
    assert [f"{c.weight:.0f}" for c in sel.mirrors] == ["99", "1", "0"]
    assert sel.mirrors[0].weight == f32(8435 * 100 / 8497)
    assert 0 < sel.mirrors[1].weight < 1  # shown as "<1%"
    assert sel.mirrors[2].weight == 0  # "n/a"


def test_worked_example_draws() -> None:
    rng = random.Random(20240601)
    firsts: Counter[str] = Counter()
    for _ in range(3000):
        sel = select(LOCAL, WORKED, FR_CLIENT, Secure.UNDEFINED, OPTS, rng)
        assert sorted(names(sel.mirrors)) == ["m1", "m2"]  # unweighted m3 is cut
        assert sel.weighted == 2
        firsts[sel.mirrors[0].mirror.name] += 1
    assert firsts["m1"] / 3000 == pytest.approx(8435 / 8497, abs=0.01)
    assert firsts["m2"] > 0


def test_single_weighted_mirror_returns_whole_sorted_list() -> None:
    sel = select(LOCAL, [(PARIS, same_file())], FR_CLIENT, Secure.UNDEFINED, OPTS,
                 random.Random(1))
    assert [(c.computed_score, c.weight) for c in sel.mirrors] == [(197, 0.0)]  # 197 < 392
    assert sel.weighted == 0
    berlin = evolve(BERLIN, score=0)  # 5173 <= base 6146: no weight
    entries = [(NEW_YORK, same_file()), (berlin, same_file()), (PARIS, same_file())]
    for mirrorlist in (False, True):
        sel = select(LOCAL, entries, FR_CLIENT, Secure.UNDEFINED, OPTS, random.Random(1),
                     mirrorlist=mirrorlist)
        assert sel.weighted == 1
        assert names(sel.mirrors) == ["m1", "m2", "m3"]
        assert [c.weight for c in sel.mirrors] == [100.0, 0.0, 0.0]


def test_draw_against_cumulative_weights() -> None:
    """A scripted generator shows the draw: uniform in [0, remaining) against cumulative
    weights of the remaining mirrors, in score order, without replacement."""

    class Scripted(random.Random):
        def __init__(self, picks: list[int]) -> None:
            super().__init__(0)
            self.picks = picks
            self.bounds: list[int] = []

        def randrange(self, stop: int, *args: object, **kwargs: object) -> int:  # type: ignore[override]
            self.bounds.append(stop)
            pick = self.picks.pop(0)
            return stop - 1 if pick < 0 else pick

    near = [(mirror(i, latitude=45.764, longitude=4.8357 + i / 100, asnum=16276), same_file())
            for i in range(1, 8)]
    far = (mirror(9, latitude=40.7128, longitude=-74.006), same_file())
    pre = select(LOCAL, [*near, far], FR_CLIENT, Secure.UNDEFINED, OPTS, random.Random(1),
                 mirrorlist=True)
    base = int(pre.mirrors[-1].distance)
    weights = [c.computed_score - base for c in pre.mirrors[:7]]
    assert pre.weighted == 7 and names(pre.mirrors)[:7] == [f"m{i}" for i in range(1, 8)]
    total = sum(weights)
    rng = Scripted([weights[0], 0, -1, 0, 0])  # -1: the last unit of the range
    sel = select(LOCAL, [*near, far], FR_CLIENT, Secure.UNDEFINED, OPTS, rng)
    # pick w0 -> second mirror; 0 -> first; last unit -> last (m7); then m3, m4; cut to 5.
    assert names(sel.mirrors) == ["m2", "m1", "m7", "m3", "m4"]
    assert rng.bounds == [total, total - weights[1], total - weights[1] - weights[0],
                          total - weights[1] - weights[0] - weights[6],
                          total - weights[1] - weights[0] - weights[6] - weights[2]]
    assert sel.mirrors[0].weight == f32(f32(weights[1] * 100) / total)
    assert sel.weighted == 7


def test_score_ties_keep_input_order() -> None:
    twins = [(mirror(i, latitude=52.52, longitude=13.405, country_codes="DE"), same_file())
             for i in (4, 2, 3)]
    sel = select(LOCAL, twins, FR_CLIENT, Secure.UNDEFINED, OPTS, random.Random(1))
    assert sel.weighted == 0 and names(sel.mirrors) == ["m4", "m2", "m3"]


def test_invalid_client_uniform_shuffle_cut_to_five() -> None:
    rng = random.Random(7)
    three = [(mirror(i), same_file()) for i in (1, 2, 3)]
    firsts: Counter[str] = Counter()
    for _ in range(3000):
        sel = select(LOCAL, three, NO_LOCATION, Secure.UNDEFINED, OPTS, rng)
        firsts[sel.mirrors[0].mirror.name] += 1
        assert all(c.computed_score == 0 and c.weight == 0 for c in sel.mirrors)
    assert all(count / 3000 == pytest.approx(1 / 3, abs=0.04) for count in firsts.values())
    seven = [(mirror(i), same_file()) for i in range(1, 8)] + [(mirror(9, enabled=False), None)]
    sel = select(LOCAL, seven, NO_LOCATION, Secure.UNDEFINED, OPTS, rng)
    assert len(sel.mirrors) == 5 and sel.weighted == 0 and names(sel.excluded) == ["m9"]
    full = select(LOCAL, seven, NO_LOCATION, Secure.UNDEFINED, OPTS, rng, mirrorlist=True)
    assert sorted(names(full.mirrors)) == [f"m{i}" for i in range(1, 8)]


def test_unknown_local_mtime_gives_empty_selection() -> None:
    sel = select(FileInfo(PATH, 100), WORKED, FR_CLIENT, Secure.UNDEFINED, OPTS,
                 random.Random(1))
    assert (sel.mirrors, sel.excluded, sel.weighted) == ([], [], 0)


def test_same_asn_bonus_needs_a_known_asn() -> None:
    """§20-13 fix: the reference gave base/2 to every mirror of ASN 0 for a client of ASN 0."""
    client = GeoRecord("MX", "NA", latitude=19.4326, longitude=-99.1332, as_num=0)
    unknown_as = mirror(1, latitude=39.4699, longitude=-0.3763, country_codes="ES", asnum=0)
    near = mirror(2, latitude=43.6532, longitude=-79.3832, country_codes="CA",
                  continent_code="NA")
    sel = select(LOCAL, [(unknown_as, same_file()), (near, same_file())], client,
                 Secure.UNDEFINED, OPTS, random.Random(1), mirrorlist=True)
    assert [(c.mirror.id, c.computed_score) for c in sel.mirrors] == [(2, 9156), (1, 1)]
    known = GeoRecord("MX", "NA", latitude=19.4326, longitude=-99.1332, as_num=64500)
    sel = select(LOCAL, [(mirror(1, latitude=39.4699, longitude=-0.3763, country_codes="ES",
                                 asnum=64500), same_file()), (near, same_file())],
                 known, Secure.UNDEFINED, OPTS, random.Random(1), mirrorlist=True)
    scores = {c.mirror.id: c.computed_score for c in sel.mirrors}
    assert scores[1] == 1 + 9365 // 2  # base 9365: a real shared ASN still gets the bonus


# --- rank order and fallbacks (§8.7; the reference's mirrors_test.go rows) ---------------------

FALLBACKS = (
    Fallback("fb1.example.net/conformance", "es", "eu"),
    Fallback("http://fb2.example.net/conformance/", "ca", "na"),
    Fallback("https://fb3.example.net/conformance/", "za", "af"),
)


def test_fallback_pseudo_mirrors() -> None:
    fbs = fallback_candidates(FALLBACKS, NO_LOCATION, Secure.UNDEFINED, random.Random(3))
    by_name = {c.mirror.name: c for c in fbs}
    first = by_name["fallback0"]
    assert (first.mirror.id, first.mirror.http_url, first.absolute_url) == (
        0, "fb1.example.net/conformance/", "https://fb1.example.net/conformance/")
    assert (first.mirror.country_codes, first.mirror.continent_code) == ("ES", "EU")
    assert not first.mirror.enabled and first.mirror.asnum == 0
    assert (first.distance, first.computed_score, first.weight, first.file) == (0, 0, 0, None)
    others = [by_name["fallback1"], by_name["fallback2"]]
    assert [(c.mirror.id, c.absolute_url) for c in others] == [
        (-1, "http://fb2.example.net/conformance/"), (-2, "https://fb3.example.net/conformance/")]
    plain = fallback_candidates(FALLBACKS, NO_LOCATION, Secure.WITHOUT_TLS, random.Random(3))
    assert {c.mirror.name: c.absolute_url for c in plain}["fallback0"] == (
        "http://fb1.example.net/conformance/")


@pytest.mark.parametrize(("client", "order"), [  # conformance matrix, unmirrored file
    (GeoRecord("PT", "EU", as_num=65201), [0, 1, 2]),  # same continent as fallback0
    (GeoRecord("ES", "EU", as_num=4200000123), [0, 1, 2]),
    (GeoRecord("CA", "NA", as_num=65203), [1, 0, 2]),  # same country as fallback1
    (GeoRecord("NG", "AF", as_num=65207), [2, 0, 1]),  # same continent as fallback2
    (GeoRecord("MX", "NA", as_num=0), [1, 0, 2]),
    (GeoRecord("AR", "SA", as_num=65107), [0, 1, 2]),  # no match: configuration order
])
def test_fallback_rank_for_located_clients(client: GeoRecord, order: list[int]) -> None:
    fbs = fallback_candidates(FALLBACKS, client, Secure.UNDEFINED, random.Random(3))
    assert [-c.mirror.id for c in fbs] == order


def test_rank_order_asn_country_continent_distance() -> None:
    client = GeoRecord("FR", "EU", as_num=64500)

    def cand(ident: int, country: str, continent: str, asn: int, distance: float) -> Candidate:
        return Candidate(mirror(ident, country_codes=country, continent_code=continent,
                                asnum=asn), None, distance)

    cands = [
        cand(1, "US", "NA", 1, 10.0),
        cand(2, "DE", "EU", 1, 30.0),
        cand(3, "DE", "EU", 1, 20.0),
        cand(4, "BE FR", "EU", 1, 900.0),  # additional country counts as "in the country"
        cand(5, "US", "NA", 64500, 5000.0),  # same ASN beats everything
        cand(6, "US", "NA", 1, 5.0),
    ]
    assert [c.mirror.id for c in rank_order(cands, client, random.Random(1))] == [
        5, 4, 3, 2, 6, 1]
    # §20-13 fix: a client without ASN does not rank ASN-0 mirrors first.
    no_asn = GeoRecord("FR", "EU", as_num=0)
    ranked = rank_order([cand(1, "US", "NA", 0, 1.0), cand(2, "FR", "EU", 7, 2.0)], no_asn,
                        random.Random(1))
    assert [c.mirror.id for c in ranked] == [2, 1]


def test_fallback_order_without_location_is_a_coin_flip_insertion_sort() -> None:
    """Not uniform: 0 1 2 and 1 0 2 about 1/4 each, the other orders about 1/8 (conformance §4)."""
    rng = random.Random(99)
    orders: Counter[tuple[int, ...]] = Counter()
    for _ in range(3000):
        fbs = fallback_candidates(FALLBACKS, NO_LOCATION, Secure.UNDEFINED, rng)
        orders[tuple(-c.mirror.id for c in fbs)] += 1
    assert len(orders) == 6
    for order, count in orders.items():
        expected = 1 / 4 if order in ((0, 1, 2), (1, 0, 2)) else 1 / 8
        assert count / 3000 == pytest.approx(expected, abs=0.03), order


# --- conformance tables (numbers copied from conformance/expected/matrix) ---------------------

ANNOUNCE = FileInfo("/ANNOUNCE.md", 66, T0)
AMD64 = FileInfo("/pool/main/tool_2.4.1_amd64.deb", 48213, 1_686_990_600 * S)
ARM64 = FileInfo("/pool/main/tool_2.4.1_arm64.deb", 46001, 1_686_990_600 * S + 123_456_789)
Row = tuple[str, str, float, float, str, str, int, dict[str, object]]
SCENARIO: dict[int, Row] = {  # id: name, HttpURL, lat, lon, continent, countries, ASN, extra
    1: ("madrid", "127.0.0.31/", 40.4168, -3.7038, "EU", "ES", 65101,
        {"excluded_country_codes": "PT"}),
    2: ("valencia", "127.0.0.32/pub/", 39.4699, -0.3763, "EU", "ES", 0,
        {"https_up": False, "https_down_reason": "Unreachable"}),
    3: ("toronto", "https://127.0.0.33/", 43.6532, -79.3832, "NA", "CA", 65103,
        {"score": 25, "http_up": False}),
    4: ("singapore", "http://127.0.0.34/", 1.3521, 103.8198, "AS", "SG", 65104,
        {"continent_only": True, "https_up": False}),
    5: ("warsaw", "http://127.0.0.35/", 52.2297, 21.0122, "EU", "PL CZ SK", 65105,
        {"score": -30, "https_up": False}),
    6: ("johannesburg", "http://127.0.0.36/", -26.2041, 28.0473, "AF", "ZA BW LS", 65106,
        {"country_only": True, "https_up": False}),
    7: ("saopaulo", "http://127.0.0.37/", -23.5505, -46.6333, "SA", "BR", 65107,
        {"as_only": True, "https_up": False}),
    8: ("reykjavik", "http://127.0.0.38/", 64.1466, -21.9426, "EU", "IS", 65108,
        {"http_up": False, "https_up": False, "http_down_reason": "Unreachable"}),
    9: ("oslo", "http://127.0.0.39/", 59.9139, 10.7522, "EU", "NO", 65109,
        {"enabled": False, "http_up": False, "https_up": False}),
}
# The mirrors' copies (rsync lists whole seconds): deviations from the local file.
DEVIATIONS: dict[str, dict[int, FileInfo | None]] = {
    "/ANNOUNCE.md": {5: FileInfo("/ANNOUNCE.md", 66, T0 + 300 * S)},
    "/pool/main/tool_2.4.1_amd64.deb": {3: FileInfo(AMD64.path, 48000, AMD64.mod_time_ns)},
    "/pool/main/tool_2.4.1_arm64.deb": {4: FileInfo(ARM64.path, 46001, 1_686_983_400 * S)},
}
MISSING = {"/pool/main/tool_2.4.1_arm64.deb": {2}}
CLIENTS = {
    "lisbon": GeoRecord("PT", "EU", "", "", 38.7223, -9.1393, "", 65201),
    "seville": GeoRecord("ES", "EU", "", "", 37.3891, -5.9845, "", 4200000123),
    "montreal": GeoRecord("CA", "NA", "", "", 45.5017, -73.5673, "", 65203),
    "jakarta": GeoRecord("ID", "AS", "", "", -6.2088, 106.8456, "", 65204),
    "prague": GeoRecord("CZ", "EU", "", "", 50.0755, 14.4378, "", 65205),
    "capetown": GeoRecord("ZA", "AF", "", "", -33.9249, 18.4241, "", 65206),
    "lagos": GeoRecord("NG", "AF", "", "", 6.5244, 3.3792, "", 65207),
    "buenosaires": GeoRecord("AR", "SA", "", "", -34.6037, -58.3816, "", 65107),
    "mexico": GeoRecord("MX", "NA", "", "", 19.4326, -99.1332, "", 0),
    "vancouver6": GeoRecord("CA", "NA", "", "", 49.2827, -123.1207, "", 65210),
}
COMMON_EXCLUDED = [("johannesburg", "Country only"), ("saopaulo", "AS only"),
                   ("reykjavik", "Unreachable / Not HTTPS"), ("oslo", "Disabled")]
ANNOUNCE_EXCLUDED = [("singapore", "Continent only"),
                     ("warsaw", "Mod time mismatch (diff: -5m0s)"), *COMMON_EXCLUDED]
AMD64_EXCLUDED = [("toronto", "File size mismatch"), ("singapore", "Continent only"),
                  *COMMON_EXCLUDED]
ARM64_EXCLUDED = [("singapore", "Mod time mismatch (diff: 2h0m0s)"), *COMMON_EXCLUDED]


def scenario_entries(local: FileInfo) -> list[tuple[Mirror, FileInfo | None]]:
    """FILEMIRRORS order (ascending ID) with each mirror's FILEINFO."""
    assert local.mod_time_ns is not None
    entries: list[tuple[Mirror, FileInfo | None]] = []
    for ident, (name, url, lat, lon, continent, countries, asn, extra) in SCENARIO.items():
        if ident in MISSING.get(local.path, ()):
            continue
        fields: dict[str, object] = {
            "name": name, "http_url": url, "latitude": lat, "longitude": lon,
            "continent_code": continent, "country_codes": countries, "asnum": asn, **extra}
        copy = DEVIATIONS.get(local.path, {}).get(
            ident, FileInfo(local.path, local.size, local.mod_time_ns // S * S))
        entries.append((mirror(ident, **fields), copy))
    return entries


@pytest.mark.parametrize(("client", "local", "ranked", "excluded"), [
    # A weighted draw: JSON showed madrid and valencia only; toronto completes the page list.
    ("seville", ANNOUNCE, [("madrid", 390.2102, 11296), ("valencia", 540.3989, 10996),
                           ("toronto", 6038.9336, 1)], ANNOUNCE_EXCLUDED),
    ("lisbon", ANNOUNCE, [("valencia", 760.47003, 7448), ("toronto", 5725.71, 1)],
     [("madrid", "User's country restriction"), *ANNOUNCE_EXCLUDED]),
    ("montreal", ANNOUNCE, [("toronto", 504.26236, 13310), ("madrid", 5531.7524, 298),
                            ("valencia", 5828.8184, 1)], ANNOUNCE_EXCLUDED),
    ("jakarta", ANNOUNCE, [("singapore", 905.3539, 22353), ("valencia", 11921.81, 3887),
                           ("madrid", 12189.297, 3619), ("toronto", 15807.166, 1)],
     ANNOUNCE_EXCLUDED[1:]),
    ("capetown", ANNOUNCE, [("johannesburg", 1261.5756, 23680), ("valencia", 8387.186, 4715),
                            ("madrid", 8572.354, 4530), ("toronto", 13101.813, 1)],
     [e for e in ANNOUNCE_EXCLUDED if e[0] != "johannesburg"]),
    ("buenosaires", ANNOUNCE, [("saopaulo", 1674.8696, 17813), ("toronto", 8958.2, 1506),
                               ("madrid", 10044.945, 119), ("valencia", 10162.6045, 1)],
     [e for e in ANNOUNCE_EXCLUDED if e[0] != "saopaulo"]),
    ("prague", AMD64, [("warsaw", 517.069, 1318), ("valencia", 1654.9805, 119),
                       ("madrid", 1772.7788, 1)], AMD64_EXCLUDED),
    ("vancouver6", AMD64, [("warsaw", 8230.375, 455), ("madrid", 8414.362, 374),
                           ("valencia", 8663.357, 1)], AMD64_EXCLUDED),
    ("seville", ARM64, [("madrid", 390.2102, 11296), ("warsaw", 2667.613, 2360),
                        ("toronto", 6038.9336, 1)], ARM64_EXCLUDED),
    ("lagos", ARM64, [("madrid", 3834.1155, 7637), ("warsaw", 5331.975, 3774),
                      ("toronto", 8925.662, 1)], ARM64_EXCLUDED),
    # The reference gave valencia (ASN 0) 4683 = 1 + 9365/2 for this ASN-less client (§20-13);
    # fixed, valencia keeps its distance score 1 and moves below madrid.
    ("mexico", ANNOUNCE, [("toronto", 3261.0437, 11445), ("madrid", 9062.653, 304),
                          ("valencia", 9365.171, 1)], ANNOUNCE_EXCLUDED),
])
def test_conformance_matrix(client: str, local: FileInfo, ranked: list[tuple[str, float, int]],
                            excluded: list[tuple[str, str]]) -> None:
    sel = select(local, scenario_entries(local), CLIENTS[client], Secure.UNDEFINED,
                 SelectionOptions(2.0), random.Random(5), mirrorlist=True)
    assert [(c.mirror.name, c.distance, c.computed_score) for c in sel.mirrors] == [
        (name, f32(distance), score) for name, distance, score in ranked]
    assert [(c.mirror.name, c.exclude_reason) for c in sel.excluded] == excluded
    answer = select(local, scenario_entries(local), CLIENTS[client], Secure.UNDEFINED,
                    SelectionOptions(2.0), random.Random(5))
    if answer.weighted > 1:  # drawn: only the weighted mirrors, in some order
        assert sorted(names(answer.mirrors)) == sorted(n for n, _, _ in ranked[:answer.weighted])
    else:  # deterministic: the whole sorted list, as the reference answered
        assert names(answer.mirrors) == [name for name, _, _ in ranked]


def test_conformance_weighted_draw_seville() -> None:
    """Mirrorlist shows madrid 51 %, valencia 49 %; redirects draw madrid first that often."""
    entries = scenario_entries(ANNOUNCE)
    opts = SelectionOptions(2.0)
    page = select(ANNOUNCE, entries, CLIENTS["seville"], Secure.UNDEFINED, opts,
                  random.Random(5), mirrorlist=True)
    assert [f"{c.weight:.0f}%" for c in page.mirrors[:2]] == ["51%", "49%"]
    assert [c.weight for c in page.mirrors[2:]] == [0.0] * (len(page.mirrors) - 2)
    rng = random.Random(11)
    firsts = Counter(
        select(ANNOUNCE, entries, CLIENTS["seville"], Secure.UNDEFINED, opts, rng)
        .mirrors[0].mirror.name for _ in range(3000))
    assert firsts["madrid"] / 3000 == pytest.approx(10756 / 21212, abs=0.03)
    assert firsts.keys() == {"madrid", "valencia"}
