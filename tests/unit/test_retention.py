"""Which statistics keys ``StatsRetention`` deletes (pure)."""

from __future__ import annotations

from datetime import date

import attrs
import txredisapi
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from mirrorbits.config import Config, StatsRetention
from mirrorbits.retention import RETRY_INTERVAL, RetentionService, expired_stats
from mirrorbits.store import keys
from tests.logcapture import captured_log

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


class _LostRedis:
    """A connection whose every command fails as a vanished Redis makes it fail."""

    scans = 0

    def scan(self, cursor: str, pattern: str, count: int) -> Deferred[tuple[str, list[str]]]:
        self.scans += 1
        return fail(txredisapi.ConnectionError("Not connected"))


def test_a_vanished_redis_is_said_once_and_tried_again_later() -> None:
    config = attrs.evolve(Config(repository="/srv"), stats_retention=StatsRetention(days=3))
    redis = _LostRedis()
    clock = Clock()
    service = RetentionService(lambda: config, lambda: redis, clock)  # type: ignore[arg-type,return-value]
    with captured_log("mirrorbits.retention") as lines:
        for _ in range(3 * int(RETRY_INTERVAL)):
            service.step()
            clock.advance(1)
    assert redis.scans == 3  # at once, then once a minute
    assert lines == ["Statistics retention paused (Not connected): tried again every 60 s"]
    assert not service.in_pass
