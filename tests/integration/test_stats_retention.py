"""``StatsRetention`` against a real redis-server: old daily and monthly counters are deleted,
yearly and all-time ones kept, a huge number of keys a bounded number at a time; and in a real
daemon (twistd) configured with it."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar, cast

import attrs
import pytest
import pytest_twisted
import redis
from twisted.internet.task import Clock

from mirrorbits.config import Config, StatsRetention
from mirrorbits.retention import RetentionService
from mirrorbits.store import keys
from mirrorbits.store.redis import RedisService
from mirrorbits.store.retention import SCAN_COUNT
from tests.daemon import DaemonProcess, base_config, repo_file
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

F = TypeVar("F")
TODAY = date(2026, 12, 4)
NOW = datetime(2026, 12, 4, 15, 30, tzinfo=UTC).timestamp()
KINDS = (keys.STATS_FILE, keys.STATS_MIRROR, keys.STATS_MIRROR_BYTES)


def ensure_deferred(test: F) -> F:
    return cast(F, pytest_twisted.ensureDeferred(test))


def plant_history(db: redis.Redis, first: date, last: date) -> None:
    """Counters of every day from ``first`` to ``last``, and of their months and years, of
    the three kinds, as the statistics flush writes them; and the totals."""
    pipe = db.pipeline(transaction=False)
    day = first
    while day <= last:
        for kind in KINDS:
            for suffix in keys.stats_suffixes(day.year, day.month, day.day):
                pipe.hincrby(kind + suffix, "/a.txt" if kind == keys.STATS_FILE else "1", 1)
        day += timedelta(days=1)
    pipe.incrby(keys.STATS_TOTAL, 1)
    pipe.execute()


def stats_keys(db: redis.Redis) -> set[str]:
    return set(db.scan_iter(match="STATS_*", count=1000))


def expected_keys(first: date, last: date, days: int, months: int) -> set[str]:
    """What should remain of :func:`plant_history` with that retention, on ``TODAY``."""
    kept = {keys.STATS_TOTAL, *KINDS}
    day = first
    this_month = TODAY.year * 12 + TODAY.month - 1
    while day <= last:
        daily, monthly, yearly, _ = keys.stats_suffixes(day.year, day.month, day.day)
        for kind in KINDS:
            kept.add(kind + yearly)
            if not months or day.year * 12 + day.month - 1 > this_month - months:
                kept.add(kind + monthly)
            if not days or day > TODAY - timedelta(days=days):
                kept.add(kind + daily)
        day += timedelta(days=1)
    return kept


async def run_pass(service: RetentionService, clock: Clock) -> list[int]:
    """Steps until the pass is over; the keys deleted by each step."""
    deleted: list[int] = []
    before = 0
    for _ in range(10_000):
        await service.step()
        if not service.in_pass:
            break
        deleted.append(service.deleted_in_pass - before)
        before = service.deleted_in_pass
        clock.advance(1)
    return deleted


def _command_name(entry: dict[str, object]) -> str:
    """The command of a ``SLOWLOG GET`` entry (redis-py gives bytes or text)."""
    command = entry["command"]
    text = command.decode() if isinstance(command, bytes) else str(command)
    return text.split()[0].upper() if text else ""


def retention_service(redis_service: RedisService, clock: Clock,
                      retention: StatsRetention) -> RetentionService:
    config = attrs.evolve(Config(repository="/srv"), stats_retention=retention)
    return RetentionService(lambda: config, redis_service.client, clock)


@ensure_deferred
async def test_old_daily_and_monthly_counters_go(service: RedisService,
                                                 redis_db: redis.Redis) -> None:
    first, last = date(2024, 11, 20), TODAY
    plant_history(redis_db, first, last)
    redis_db.set("STATSBATCH_x", "1")  # not a counter
    redis_db.hset("STATS_FILE_2026_13_40", "/a.txt", 1)  # not a date: left alone
    planted = stats_keys(redis_db)
    clock = Clock()
    clock.advance(NOW)
    retention = retention_service(service, clock, StatsRetention(days=30, months=12))
    await run_pass(retention, clock)
    left = stats_keys(redis_db)
    assert left == expected_keys(first, last, 30, 12) | {"STATS_FILE_2026_13_40"}
    assert keys.STATS_FILE + "_2026_11_05" in left and keys.STATS_FILE + "_2026_11_04" not in left
    assert keys.STATS_MIRROR + "_2026_01" in left and keys.STATS_MIRROR + "_2025_12" not in left
    assert keys.STATS_MIRROR_BYTES + "_2024" in left
    assert len(planted) - len(left) == 3 * ((date(2026, 11, 4) - first).days + 1 + 14)
    assert redis_db.get("STATSBATCH_x") == "1"
    # a second pass finds nothing more to delete, and not before an hour
    await retention.step()
    assert not retention.in_pass
    clock.advance(3600)
    await run_pass(retention, clock)
    assert stats_keys(redis_db) == left
    # a reload starts the next pass at once, not an hour after the last one
    redis_db.hset(keys.STATS_FILE + "_2020_01_01", "/a.txt", 1)
    clock.advance(1)
    await retention.step()
    assert redis_db.exists(keys.STATS_FILE + "_2020_01_01")
    retention.config_changed()
    await run_pass(retention, clock)
    assert not redis_db.exists(keys.STATS_FILE + "_2020_01_01")


@ensure_deferred
async def test_zero_keeps_that_period_forever(service: RedisService,
                                              redis_db: redis.Redis) -> None:
    first, last = date(2025, 1, 1), TODAY
    plant_history(redis_db, first, last)
    clock = Clock()
    clock.advance(NOW)
    await run_pass(retention_service(service, clock, StatsRetention(days=0, months=3)), clock)
    assert stats_keys(redis_db) == expected_keys(first, last, 0, 3)
    await run_pass(retention_service(service, clock, StatsRetention(days=7, months=0)), clock)
    assert stats_keys(redis_db) == expected_keys(first, last, 7, 3)


@ensure_deferred
async def test_a_huge_number_of_keys_goes_a_bounded_number_per_step(
        service: RedisService, redis_db: redis.Redis) -> None:
    first, last = date(1950, 1, 1), TODAY  # 28,000 days: about 85,000 daily keys
    plant_history(redis_db, first, last)
    clock = Clock()
    clock.advance(NOW)
    retention = retention_service(service, clock, StatsRetention(days=1, months=1))
    redis_db.config_set("slowlog-max-len", 100_000)
    redis_db.config_set("slowlog-log-slower-than", 0)  # every command, with its duration
    redis_db.slowlog_reset()
    started = time.monotonic()
    per_step = await run_pass(retention, clock)
    elapsed = time.monotonic() - started
    commands = [entry for entry in redis_db.slowlog_get(100_000)
                if _command_name(entry) in ("SCAN", "UNLINK")]
    redis_db.config_set("slowlog-log-slower-than", 10_000)
    longest_ms = max(entry["duration"] for entry in commands) / 1000
    assert longest_ms < 100  # Redis is never blocked long (about 1 ms here)
    assert stats_keys(redis_db) == expected_keys(first, last, 1, 1)
    assert len(per_step) > 50  # spread over many ticks
    assert max(per_step) <= 2 * SCAN_COUNT  # SCAN's COUNT is a hint: about that many
    print(f"{sum(per_step)} keys in {len(per_step)} steps, {elapsed:.1f} s, "
          f"at most {max(per_step)} per step; longest SCAN/UNLINK {longest_ms:.2f} ms "
          f"of {len(commands)}")


def test_the_daemon_deletes_old_counters(tmp_path: Path, redis_server: RedisServer,
                                         redis_db: redis.Redis) -> None:
    today = datetime.now(UTC).date()
    first = today - timedelta(days=100)
    plant_history(redis_db, first, today)
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address),
                           raw="StatsRetention: {Days: 10}\n")
    daemon.start()
    try:
        old = keys.STATS_FILE + "_" + (today - timedelta(days=50)).strftime("%Y_%m_%d")
        recent = keys.STATS_FILE + "_" + (today - timedelta(days=2)).strftime("%Y_%m_%d")
        deadline = time.monotonic() + 20
        while redis_db.exists(old) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not redis_db.exists(old)
        assert redis_db.exists(recent)
        daemon.wait_log("old counters deleted")
        log = daemon.log()
    finally:
        daemon.stop()
    periods = [keys.stats_key_period(key) for key in stats_keys(redis_db)]
    assert len([period for period in periods if period is not None and period[2]]) == 3 * 10
    assert "Traceback" not in log
