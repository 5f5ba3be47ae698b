"""Statistics key names: day rollover in UTC and the CLI's time-key coverage (spec §11.2)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mirrorbits.stats import time_key_coverage, utc_date
from mirrorbits.store import keys


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # The three examples of the spec (the reference's unit test).
        (utc(2015, 10, 30, 12, 42), utc(2015, 12, 2, 13, 42),
         ["2015_10_30", "2015_10_31", "2015_11", "2015_12_01"]),
        (utc(2015, 1, 1), utc(2017, 1, 1), ["2015", "2016"]),
        (utc(2015, 12, 31), utc(2016, 1, 2), ["2015_12_31", "2016_01_01"]),
        # Same calendar day: that day, whatever the times.
        (utc(2026, 11, 25, 1), utc(2026, 11, 25, 23, 59), ["2026_11_25"]),
        (utc(2026, 11, 25), utc(2026, 11, 25), ["2026_11_25"]),
        # The CLI's "today -> tomorrow" gives today; the end day is excluded.
        (utc(2026, 11, 25), utc(2026, 11, 26), ["2026_11_25"]),
        (utc(2023, 1, 1), utc(2026, 11, 25),
         ["2023", "2024", "2025", "2026_01", "2026_02", "2026_03", "2026_04", "2026_05",
          "2026_06", "2026_07", "2026_08", "2026_09", "2026_10",
          *[f"2026_11_{d:02d}" for d in range(1, 25)]]),
        # A whole month, then a year not starting on January 1st.
        (utc(2026, 2, 1), utc(2026, 3, 1), ["2026_02"]),
        (utc(2026, 3, 1), utc(2027, 3, 1),
         [*[f"2026_{m:02d}" for m in range(3, 13)], "2027_01", "2027_02"]),
        # Leap day: the day-by-day walk stops exactly on the end instant.
        (utc(2024, 2, 27, 12), utc(2024, 2, 29, 12), ["2024_02_27", "2024_02_28"]),
        (utc(2024, 2, 28), utc(2024, 3, 2), ["2024_02_28", "2024_02_29", "2024_03_01"]),
        # Non-midnight times: the walk of step 2 runs to the end of the start month.
        (utc(2026, 11, 29, 18), utc(2026, 12, 1, 6),
         ["2026_11_29", "2026_11_30"]),
        # Years below 1000 stay zero-padded.
        (utc(999, 12, 31), utc(999, 12, 31, 1), ["0999_12_31"]),
        (utc(999, 1, 1), utc(1000, 1, 1), ["0999"]),
    ],
)
def test_time_key_coverage(start: datetime, end: datetime, expected: list[str]) -> None:
    assert time_key_coverage(start, end) == expected


def test_coverage_of_a_reversed_range_is_bounded() -> None:
    # start after end: the day walk stops at the end of the start month.
    assert time_key_coverage(utc(2026, 11, 29), utc(2026, 1, 5)) == ["2026_11_29", "2026_11_30"]


def test_coverage_at_the_end_of_the_calendar_terminates() -> None:
    assert time_key_coverage(utc(9999, 1, 1), utc(9999, 12, 31)) == [
        *[f"9999_{m:02d}" for m in range(1, 12)],
        *[f"9999_12_{d:02d}" for d in range(1, 31)],
    ]


def test_utc_date_ignores_the_local_zone() -> None:
    # 2026-11-25 23:30 UTC is already the 26th in Tokyo, still the 25th in UTC.
    assert utc_date(utc(2026, 11, 25, 23, 30).timestamp()) == date(2026, 11, 25)
    assert utc_date(utc(2026, 11, 26).timestamp()) == date(2026, 11, 26)


def test_stats_suffixes_are_zero_padded() -> None:
    assert keys.stats_suffixes(2026, 1, 5) == ("_2026_01_05", "_2026_01", "_2026", "")
