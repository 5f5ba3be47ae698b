"""Which statistics keys ``StatsRetention`` deletes (pure)."""

from __future__ import annotations

from datetime import date

from mirrorbits.config import StatsRetention
from mirrorbits.retention import expired_stats
from mirrorbits.store import keys

TODAY = date(2026, 3, 10)


def test_key_periods() -> None:
    assert keys.stats_key_period("STATS_FILE_2026_03_10") == (2026, 3, 10)
    assert keys.stats_key_period("STATS_MIRROR_BYTES_2026_03") == (2026, 3, 0)
    assert keys.stats_key_period("STATS_MIRROR_2026") == (2026, 0, 0)
    for other in ("STATS_FILE", "STATS_MIRROR_BYTES", "STATS_TOTAL", "STATSBATCH_1",
                  "STATS_FILE_26_03_10", "STATS_FILE_2026_3_10", "STATS_OTHER_2026",
                  "STATS_FILE_2026_03_10_x", "FILE_STATS_FILE_2026"):
        assert keys.stats_key_period(other) is None, other


def test_days_keep_today_and_the_days_before() -> None:
    expired = expired_stats(StatsRetention(days=3), TODAY)
    assert [expired(f"STATS_FILE_2026_03_{day:02d}") for day in range(6, 12)] == [
        True, True, False, False, False, False]  # the 8th, 9th and 10th kept (and tomorrow)
    assert not expired("STATS_FILE_2020_01")  # months: forever
    assert not expired("STATS_FILE_2020")
    assert not expired("STATS_FILE_2026_02_30")  # not a date


def test_months_keep_this_month_and_the_months_before() -> None:
    expired = expired_stats(StatsRetention(months=3), TODAY)
    assert [expired(f"STATS_MIRROR_{month}") for month in (
        "2025_11", "2025_12", "2026_01", "2026_02", "2026_03")] == [True, True, False, False,
                                                                 False]
    assert not expired("STATS_MIRROR_2025_12_01")  # days: forever
    assert not expired("STATS_MIRROR_2025_13")
    assert not expired("STATS_MIRROR_2020")  # years: forever


def test_nothing_expires_by_default() -> None:
    expired = expired_stats(StatsRetention(), TODAY)
    assert not any(expired(key) for key in (
        "STATS_FILE_1990_01_01", "STATS_FILE_1990_01", "STATS_FILE_1990", "STATS_FILE"))
