"""The timezone-offset rule of spec §6.5 (:func:`detect_offset`)."""

from __future__ import annotations

from mirrorbits.scan.tzoffset import detect_offset

S = 1_000_000_000
MS = 1_000_000
HOUR = 3600 * S
BASE = 1_795_571_680 * S  # a whole second


def shifted(count: int, shift_ns: int, start: int = 0) -> list[tuple[int, int]]:
    """``count`` pairs whose mirror time is ``shift_ns`` before the local time."""
    return [(BASE + (start + n) * 60 * S, BASE + (start + n) * 60 * S - shift_ns)
            for n in range(count)]


def test_one_hour_behind_gives_plus_one_hour_in_ms() -> None:
    assert detect_offset(shifted(20, HOUR), 20, S) == 3_600_000


def test_mirror_ahead_gives_a_negative_offset() -> None:
    assert detect_offset(shifted(20, -2 * HOUR), 20, S) == -7_200_000


def test_identical_times_give_zero_not_none() -> None:
    assert detect_offset(shifted(20, 0), 20, S) == 0


def test_at_least_ten_pairs_are_needed() -> None:
    assert detect_offset(shifted(9, HOUR), 9, S) is None
    assert detect_offset(shifted(10, HOUR), 10, S) == 3_600_000
    assert detect_offset([], 0, S) is None


def test_at_least_half_of_the_sample_integer_division() -> None:
    assert detect_offset(shifted(10, HOUR), 20, S) == 3_600_000
    assert detect_offset(shifted(10, HOUR), 21, S) == 3_600_000  # 21 // 2 == 10
    assert detect_offset(shifted(10, HOUR), 22, S) is None
    assert detect_offset(shifted(50, HOUR), 100, S) == 3_600_000
    assert detect_offset(shifted(49, HOUR), 100, S) is None


def test_ninety_percent_threshold_is_exact() -> None:
    # 20 pairs: int(20 / 100 * 90) == 18 occurrences are needed.
    assert detect_offset(shifted(18, HOUR) + shifted(2, 0, 18), 20, S) == 3_600_000
    assert detect_offset(shifted(17, HOUR) + shifted(3, 0, 17), 20, S) is None
    # 10 pairs: 9 are needed.
    assert detect_offset(shifted(9, HOUR) + shifted(1, 0, 9), 10, S) == 3_600_000
    assert detect_offset(shifted(8, HOUR) + shifted(2, 0, 8), 10, S) is None


def test_threshold_uses_the_reference_float_arithmetic() -> None:
    # 70 / 100 * 90 == 62.99999999999999 in float64, so 62 occurrences out of 70 suffice.
    assert detect_offset(shifted(62, HOUR) + shifted(8, 0, 62), 70, S) == 3_600_000
    assert detect_offset(shifted(61, HOUR) + shifted(9, 0, 61), 70, S) is None


def test_the_majority_wins_even_when_the_others_come_first() -> None:
    # With >= 90 % required, two offsets can never both reach the threshold (no real tie):
    # whatever the order, the offset returned is the one reaching it.
    pairs = shifted(2, 0) + shifted(18, -HOUR, 2)
    assert detect_offset(pairs, 20, S) == -3_600_000
    assert detect_offset(list(reversed(pairs)), 20, S) == -3_600_000


def test_both_times_are_truncated_to_the_precision_before_the_difference() -> None:
    # Local times at .9 s, mirror times one hour earlier at .1 s: with a 1 s precision the
    # difference is exactly one hour; with 1 ms it is 3600.8 s.
    pairs = [(local + 900 * MS, local - HOUR + 100 * MS) for local, _ in shifted(20, 0)]
    assert detect_offset(pairs, 20, S) == 3_600_000
    assert detect_offset(pairs, 20, MS) == 3_600_800


def test_sub_precision_jitter_only_matches_after_truncation() -> None:
    # Mirror times within the same second but with varying milliseconds.
    pairs = [(local, local - HOUR + n * 7 * MS) for n, (local, _) in enumerate(shifted(20, 0))]
    assert detect_offset(pairs, 20, S) == 3_600_000
    assert detect_offset(pairs, 20, MS) is None


def test_a_minute_precision_truncates_to_whole_minutes() -> None:
    minute = 1_795_571_640 * S  # a whole minute
    # hh:mm:59 locally, (hh-1):mm:00 on the mirror: both truncate to whole minutes.
    pairs = [(minute + n * 60 * S + 59 * S, minute + n * 60 * S - HOUR) for n in range(20)]
    assert detect_offset(pairs, 20, 60 * S) == 3_600_000
    assert detect_offset(pairs, 20, S) == 3_659_000


def test_milliseconds_are_truncated_toward_zero() -> None:
    # Without truncation of the times (precision 1 ns), -1.5 ms becomes -1 ms (Go's
    # Duration.Milliseconds), and +1.5 ms becomes +1 ms.
    ahead = [(local, local + 1_500_000) for local, _ in shifted(20, 0)]
    behind = [(local, local - 1_500_000) for local, _ in shifted(20, 0)]
    assert detect_offset(ahead, 20, 1) == -1
    assert detect_offset(behind, 20, 1) == 1
