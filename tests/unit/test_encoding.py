"""Redis value encodings and Go text formats (spec §3.1, §4.1, §13, §17.2)."""

from __future__ import annotations

import struct
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirrorbits import encoding as enc
from mirrorbits.float32 import f32, format_f32, format_f32_g, shortest_digits32

# 2023-06-17 08:30:00 UTC, the mtime of a conformance file.
T0 = 1686990600
NS = 1_000_000_000


# -- bool / numbers --------------------------------------------------------------------------


def test_bool_encoding() -> None:
    assert (enc.encode_bool(True), enc.encode_bool(False)) == ("1", "0")


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_decode_bool_true_spellings(text: str) -> None:
    assert enc.decode_bool(text) is True


@pytest.mark.parametrize(
    "text", ["0", "f", "F", "FALSE", "false", "False", None, "", "yes", "tRUE", " 1"]
)
def test_decode_bool_false_missing_and_invalid(text: str | None) -> None:
    assert enc.decode_bool(text) is False


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (48.8582, "48.8582"),
        (-74.006, "-74.006"),
        (13.405, "13.405"),
        (40.4168, "40.4168"),
        (-3.7038, "-3.7038"),
        (-0.3763, "-0.3763"),
        (103.8198, "103.8198"),
        (0.0, "0"),
        (180.0, "180"),
        (-180.0, "-180"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),  # Go's %g switches to the exponent form below 1e-4
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
    ],
)
def test_encode_f32_uses_go_g_format(value: float, text: str) -> None:
    assert enc.encode_f32(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (392.14078, "392.14078"),
        (877.4632, "877.4632"),
        (8915.526, "8915.526"),
        (504.26236, "504.26236"),
        (1e6, "1000000"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1e21, "1e+21"),
        (-0.0, "-0"),
        (16777217.0, "16777216"),  # rounds to the nearest float32 first
    ],
)
def test_format_f32_json_layout(value: float, text: str) -> None:
    assert format_f32(value) == text


def test_f32_text_rejects_what_go_cannot_encode() -> None:
    for bad in (float("nan"), float("inf"), 1e39):
        with pytest.raises(ValueError):
            format_f32(bad)


def _exact_shortest(bits: int) -> tuple[str, int]:
    """Shortest closest decimal of a positive float32 by exact rational search (slow oracle)."""
    def value(b: int) -> Fraction:
        return Fraction(struct.unpack("<f", struct.pack("<I", b))[0])

    x, below = value(bits), value(bits - 1) if bits > 1 else Fraction(0)
    above = value(bits + 1) if bits < 0x7F7FFFFF else 2 * x - below
    lo, hi = (x + below) / 2, (x + above) / 2
    inclusive = bits % 2 == 0
    for n in range(1, 10):
        best: tuple[Fraction, int, int] | None = None
        k0 = len(str(int(x))) - n if x >= 1 else -len(str(int(1 / x))) - n
        for k in range(k0 - 2, k0 + 3):
            scale = Fraction(10) ** k
            for d in (int(x / scale), int(x / scale) + 1):
                if not 10 ** (n - 1) <= d < 10**n:
                    continue
                cand = d * scale
                inside = lo <= cand <= hi if inclusive else lo < cand < hi
                dist = abs(cand - x)
                if inside and (
                    best is None
                    or dist < abs(best[0] - x)
                    or (dist == abs(best[0] - x) and d % 2 == 0)
                ):
                    best = (cand, d, k)
        if best is not None:
            return str(best[1]).rstrip("0"), n + best[2]
    raise AssertionError


@given(st.integers(min_value=1, max_value=0x7F7FFFFF))
def test_shortest_float32_digits_match_exact_search(bits: int) -> None:
    x = struct.unpack("<f", struct.pack("<I", bits))[0]
    neg, digits, dp = shortest_digits32(x)
    assert not neg
    assert (digits, dp) == _exact_shortest(bits)


@pytest.mark.parametrize("exponent", [1, 23, 100, 126, 127, 150, 200, 254])
def test_shortest_float32_digits_at_powers_of_two(exponent: int) -> None:
    bits = exponent << 23
    x = struct.unpack("<f", struct.pack("<I", bits))[0]
    assert shortest_digits32(x)[1:] == _exact_shortest(bits)


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_f32_texts_read_back(x: float) -> None:
    assert f32(float(format_f32(x))) == x
    assert f32(float(format_f32_g(x))) == x
    assert enc.decode_f32(enc.encode_f32(x)) == x


@pytest.mark.parametrize(
    ("text", "value"),
    [("48.8582", 48.8582), ("-1", -1.0), (".5", 0.5), ("1e3", 1000.0), ("1e-05", 1e-5)],
)
def test_decode_float(text: str, value: float) -> None:
    assert enc.decode_float(text) == value


@pytest.mark.parametrize("text", [None, "", "abc", "1.2.3", " 1", "1_0", "NaN", "inf", "1e999"])
def test_decode_float_invalid_is_zero(text: str | None) -> None:
    assert enc.decode_float(text) == 0.0


def test_decode_f32_rounds_to_float32() -> None:
    assert enc.decode_f32("48.8582") == f32(48.8582) != 48.8582
    assert enc.decode_f32("1e39") == 0.0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-30", -30),
        ("+25", 25),
        ("1000000000", 10**9),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_decode_int(text: str, value: int) -> None:
    assert enc.decode_int(text) == value


@pytest.mark.parametrize(
    "text", [None, "", "1.5", "1_000", " 1", "٣", "9223372036854775808", "0x10"]
)
def test_decode_int_invalid_is_zero(text: str | None) -> None:
    assert enc.decode_int(text) == 0


def test_decode_uint() -> None:
    assert enc.decode_uint("4200000123") == 4200000123
    assert enc.decode_uint("-1") == 0
    assert enc.decode_uint(None) == 0


# -- Unix seconds ----------------------------------------------------------------------------


def test_unix_times() -> None:
    assert enc.encode_unix(1795571682) == "1795571682"
    assert enc.decode_unix("1795571682") == 1795571682
    assert enc.decode_unix("0") == 0
    assert enc.decode_unix(None) is None
    assert enc.decode_unix("not-a-timestamp") is None
    assert enc.decode_unix(str(enc.GO_ZERO_UNIX)) is None


# -- Go Time.String() ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "offset", "zone", "text"),
    [
        (T0 * NS, 0, "UTC", "2023-06-17 08:30:00 +0000 UTC"),
        (T0 * NS + 123456789, 0, "UTC", "2023-06-17 08:30:00.123456789 +0000 UTC"),
        (T0 * NS + 500_000_000, 0, "UTC", "2023-06-17 08:30:00.5 +0000 UTC"),
        (T0 * NS + 1000, 0, "UTC", "2023-06-17 08:30:00.000001 +0000 UTC"),
        (1704164645 * NS + 123456789, 0, "UTC", "2024-01-02 03:04:05.123456789 +0000 UTC"),
        (1704164645 * NS, 3600, "CET", "2024-01-02 04:04:05 +0100 CET"),
        (1704164645 * NS, -5 * 3600 - 1800, "", "2024-01-01 21:34:05 -0530 -0530"),
        (enc.GO_ZERO_UNIX * NS, 0, "UTC", "0001-01-01 00:00:00 +0000 UTC"),
        (-1 * NS + 1, 0, "UTC", "1969-12-31 23:59:59.000000001 +0000 UTC"),
    ],
)
def test_format_go_time(ns: int, offset: int, zone: str, text: str) -> None:
    assert enc.format_go_time(ns, offset, zone) == text


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2023-06-17 08:30:00 +0000 UTC", T0 * NS),
        ("2023-06-17 08:30:00.123456789 +0000 UTC", T0 * NS + 123456789),
        ("2023-06-17 10:30:00.5 +0200 CEST", T0 * NS + 500_000_000),
        ("2023-06-17 03:00:00 -0530 -0530", T0 * NS),
        ("2023-06-17 08:30:00.1234567891 +0000 UTC", T0 * NS + 123456789),  # Go truncates
        ("2023-06-17 08:30:00 +0000 UTC m=+0.001", T0 * NS),
    ],
)
def test_parse_go_time(text: str, ns: int) -> None:
    assert enc.parse_go_time(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "garbage",
        "2023-06-17T08:30:00Z",
        "2023-02-30 08:30:00 +0000 UTC",
        "2023-06-17 24:00:00 +0000 UTC",
        "2023-06-17 08:30:00 +0000",
        "0001-01-01 00:00:00 +0000 UTC",  # Go's zero time
    ],
)
def test_parse_go_time_invalid_or_zero_is_none(text: str | None) -> None:
    assert enc.parse_go_time(text) is None


@given(
    st.integers(min_value=-10**19, max_value=10**19),
    st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: m * 60),
    st.sampled_from(["UTC", "CET", "EST", "+03", ""]),
)
def test_go_time_round_trip(ns: int, offset: int, zone: str) -> None:
    assert enc.parse_go_time(enc.format_go_time(ns, offset, zone)) == ns


def test_local_go_time_uses_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        assert enc.local_go_time(1704164645 * NS) == "2024-01-02 04:04:05 +0100 CET"
        assert enc.local_go_time(T0 * NS + 7) == "2023-06-17 10:30:00.000000007 +0200 CEST"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


# -- RFC 3339 / RFC 1123 ---------------------------------------------------------------------


def test_rfc3339_json_times() -> None:
    assert enc.rfc3339_from_ns(1795567011 * NS + 860426613) == "2026-11-25T00:36:51.860426613Z"
    assert enc.rfc3339_from_ns(1706745600 * NS) == "2024-02-01T00:00:00Z"
    assert enc.rfc3339_from_ns(None) == "0001-01-01T00:00:00Z"
    assert enc.rfc3339_from_unix(1795571682) == "2026-11-25T01:54:42Z"
    assert enc.rfc3339_from_unix(None) == "0001-01-01T00:00:00Z"


def test_rfc3339_nano_trims_trailing_zeros() -> None:
    assert enc.format_rfc3339_nano(1795567027 * NS + 746651119) == "2026-11-25T00:37:07.746651119Z"
    assert enc.format_rfc3339_nano(1795571680 * NS + 56475540) == "2026-11-25T01:54:40.05647554Z"


def test_parse_rfc3339() -> None:
    assert enc.parse_rfc3339("2026-11-25T01:54:40.05647554Z") == 1795571680 * NS + 56475540
    assert enc.parse_rfc3339("2026-11-25T02:54:40+01:00") == 1795571680 * NS
    assert enc.parse_rfc3339("0001-01-01T00:00:00Z") is None
    assert enc.parse_rfc3339("2026-11-25 01:54:40Z") is None


@given(st.integers(min_value=-10**19, max_value=10**19))
def test_rfc3339_round_trip(ns: int) -> None:
    assert enc.parse_rfc3339(enc.format_rfc3339_nano(ns)) == ns


def test_http_and_rfc1123_dates() -> None:
    assert enc.format_http_date(1748757600) == "Sun, 01 Jun 2025 06:00:00 GMT"
    assert enc.format_rfc1123_utc(1795567031) == "Wed, 25 Nov 2026 00:37:11 UTC"
    assert enc.format_rfc1123_utc(None) == "Mon, 01 Jan 0001 00:00:00 UTC"
    assert enc.format_log_time(1795571680 * NS + 5) == "2026-11-25 01:54:40 UTC"
    assert enc.format_log_time(None) == "0001-01-01 00:00:00 UTC"


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (10 * NS, "10s"),
        (-10 * NS, "-10s"),
        (100 * NS, "1m40s"),
        (3600 * NS, "1h0m0s"),
        (1_500_000_000, "1.5s"),
        (250_000_000, "250ms"),
        (1_000, "1µs"),
        (1_500, "1.5µs"),
        (999, "999ns"),
        (1_000_001, "1.000001ms"),
        (9000 * NS, "2h30m0s"),
        (-3 * 3600 * NS, "-3h0m0s"),
        (3723 * NS + 5, "1h2m3.000000005s"),
        (-(2**63), "-2562047h47m16.854775808s"),
        (2**63 - 1, "2562047h47m16.854775807s"),
    ],
)
def test_format_go_duration(ns: int, text: str) -> None:
    assert enc.format_go_duration(ns) == text


# -- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0.0 bytes"),
        (66, "66.0 bytes"),
        (1023, "1023.0 bytes"),
        (1024, "1.0 KiB"),
        (12345, "12.1 KiB"),
        (786432, "768.0 KiB"),
        (1_000_000, "976.6 KiB"),
        (3 * 1024**2, "3.0 MiB"),
        (5 * 1024**5, "5120.0 TiB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert enc.human_size(size) == text


def test_plural() -> None:
    assert [enc.plural(n) for n in (-2, -1, 0, 1, 2)] == ["s", "", "", "", "s"]
