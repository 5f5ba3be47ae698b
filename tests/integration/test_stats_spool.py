"""``StatsSpoolDir``: the counts Redis could not take at stop are kept on disk, then counted
once by the daemon (a real redis-server; the flush loop on a ``Clock``)."""

from __future__ import annotations

import json
import os
import signal
from datetime import date
from pathlib import Path
from unittest.mock import ANY

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater

from mirrorbits import statsspool
from mirrorbits.stats import StatsService
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import started_service
from tests.integration.test_stats import (
    at,
    clock_at,
    flush_until_written,
    levels,
    stats_keys,
    within,
)
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 25)


def started_stats(redis_service: RedisService, clock: Clock, spool: Path, *,
                  replays: bool = False) -> StatsService:
    """A started statistics service keeping what it could not write in ``spool`` at its stop;
    ``replays``: the daemon's, which also writes what it finds there."""
    service = StatsService(redis_service.session, clock, flush_interval=0.5,
                           spool_dir=lambda: str(spool),
                           replays_spool=replays)
    service.startService()
    return service


def spool_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


@pytest_twisted.ensureDeferred
async def test_counts_saved_at_a_stop_without_redis_are_counted_once_at_the_next_start(
    tmp_path: Path, stats_log: list[str]
) -> None:
    """The first batch reaches Redis but its reply never comes back (Redis frozen), the second
    is never sent: both are saved; the next start sends both with their ids, and the one
    Redis already had is not counted again."""
    spool = tmp_path / "spool"
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    assert server.process is not None
    db = server.client()
    redis_service = await started_service(server)
    clock = clock_at(at(2026, 11, 25, 12))
    worker = started_stats(redis_service, clock, spool)
    try:
        worker.count_download(3, "/sent.iso", 100)
        server.process.send_signal(signal.SIGSTOP)  # alive, but answers nothing
        clock.advance(0.5)  # the first batch is sent, never answered
        worker.count_download(3, "/waiting.iso", 10)
        worker.count_download(3, "/waiting.iso", 10)
        stopped = worker.stopService()
        clock.advance(worker.stop_timeout)
        await within(stopped)
        [name] = spool_files(spool)
        assert name.startswith(f"stats-{os.getpid()}-") and name.endswith(".json")
        assert f"Saved 3 download(s) to {spool / name}: they are counted at the next start" \
            in stats_log
        assert not [m for m in stats_log if "Could not commit" in m]
        saved = statsspool.load(str(spool / name))
        assert [batch.downloads for batch in saved] == [1, 2]

        server.process.send_signal(signal.SIGCONT)  # the first batch is written now
        for _ in range(200):
            if db.get("STATS_TOTAL") == "1":
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert db.get("STATS_TOTAL") == "1"
    finally:
        server.process.send_signal(signal.SIGCONT)
        await within(redis_service.stopService())

    redis_service = await started_service(server)
    clock = clock_at(at(2026, 11, 26, 8))  # the next day: counted on the day of the download
    daemon = started_stats(redis_service, clock, spool, replays=True)
    try:
        clock.advance(0.5)
        await within(daemon.when_idle())
        await flush_until_written(daemon, clock)
        assert spool_files(spool) == []  # deleted once written
        assert ("Downloads kept at a stop written to Redis: 2 (1 batch(es) it had already), "
                f"from {spool / name}") in stats_log
        assert stats_keys(db) == {
            **levels("STATS_FILE", DAY, {"/sent.iso": "1", "/waiting.iso": "2"}),
            **levels("STATS_MIRROR", DAY, {"3": "3"}),
            **levels("STATS_MIRROR_BYTES", DAY, {"3": "120"}),
            "STATS_TOTAL": "3",
        }
        clock.advance(daemon.spool_check_interval)  # a later look finds nothing more
        await within(daemon.when_idle())
        assert db.get("STATS_TOTAL") == "3"
    finally:
        await within(daemon.stopService())
        await within(redis_service.stopService())
        db.close()
        server.stop()


@pytest_twisted.ensureDeferred
async def test_a_process_that_does_not_read_the_spool_leaves_it(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis, stats_log: list[str]
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    statsspool.save(str(spool), [])
    before = spool_files(spool)
    redis_service = await started_service(redis_server)
    clock = clock_at(at(2026, 11, 25, 12))
    worker = started_stats(redis_service, clock, spool)
    try:
        worker.count_download(1, "/a", 1)
        clock.advance(0.5)
        await within(worker.when_idle())
        assert spool_files(spool) == before
    finally:
        await within(worker.stopService())
        await within(redis_service.stopService())


@pytest_twisted.ensureDeferred
async def test_an_unreadable_spool_file_is_set_aside_in_one_line(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis, stats_log: list[str]
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    damaged = spool / "stats-12-ab.json"
    damaged.write_bytes(b'{"format": "mirrorbits-stats-spool", "version": 1, "bat')
    good = statsspool.save(str(spool), [])  # no batch: simply deleted
    document = json.loads(statsspool.encode([statsspool.SpooledBatch(
        "x:1", 1, (b"STATS_FILE", b"STATS_MIRROR", b"STATS_MIRROR_BYTES", b"1", b"", b"60"))]))
    document["batches"][0]["downloads"] = 1000  # edited: the checksum no longer matches
    edited = spool / "stats-13-cd.json"
    edited.write_text(json.dumps(document))
    redis_service = await started_service(redis_server)
    clock = clock_at(at(2026, 11, 25, 12))
    daemon = started_stats(redis_service, clock, spool, replays=True)
    try:
        daemon.count_download(1, "/a", 1)
        clock.advance(0.5)
        await within(daemon.when_idle())
        assert not os.path.exists(good)
        assert spool_files(spool) == ["stats-12-ab.json.unreadable",
                                      "stats-13-cd.json.unreadable"]
        warnings = [m for m in stats_log if m.startswith("Statistics spool file")]
        assert warnings == [
            f"Statistics spool file {damaged} cannot be read (not JSON: Unterminated string "
            f"starting at: line 1 column 52 (char 51)): set aside as {damaged}.unreadable, "
            "not counted",
            f"Statistics spool file {edited} cannot be read (checksum mismatch): set aside as "
            f"{edited}.unreadable, not counted",
        ]
        assert redis_db.get("STATS_TOTAL") == "1"
    finally:
        await within(daemon.stopService())
        await within(redis_service.stopService())


@pytest_twisted.ensureDeferred
async def test_the_daemon_stopped_before_redis_took_the_saved_counts_saves_them_again(
    tmp_path: Path, stats_log: list[str]
) -> None:
    spool = tmp_path / "spool"
    arguments = (b"STATS_FILE", b"STATS_MIRROR", b"STATS_MIRROR_BYTES", b"4",
                 b"10\x004\x00/old.iso\x00", b"3600", b"", b"_2026", b"_2026_11", b"_2026_11_25")
    first = statsspool.save(str(spool), [statsspool.SpooledBatch("old:1", 4, arguments)])
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    redis_service = await started_service(server)
    server.stop()  # gone before the daemon's first flush
    clock = clock_at(at(2026, 11, 26, 8))
    daemon = started_stats(redis_service, clock, spool, replays=True)
    try:
        clock.advance(0.5)
        await within(daemon.when_idle())
        assert daemon.pending_downloads() == 4  # taken from the file
        daemon.count_download(2, "/new.iso", 5)
    finally:
        stopped = daemon.stopService()
        for _ in range(100):  # the final flush's retries, then its deadline
            if stopped.called:
                break
            clock.advance(0.1)
            await deferLater(reactor, 0.01, lambda: None)
        await within(stopped)
        await within(redis_service.stopService())
    [name] = spool_files(spool)  # the first file replaced by one holding both
    assert str(spool / name) != first
    assert f"Saved 5 download(s) to {spool / name}: they are counted at the next start" \
        in stats_log
    assert [(b.batch_id, b.downloads) for b in statsspool.load(str(spool / name))] == [
        ("old:1", 4), (ANY, 1)]

    server.start()
    db = server.client()
    redis_service = await started_service(server)
    daemon = started_stats(redis_service, clock, spool, replays=True)
    try:
        clock.advance(0.5)
        await within(daemon.when_idle())
        await flush_until_written(daemon, clock)
        assert spool_files(spool) == []
        assert db.get("STATS_TOTAL") == "5"
        assert db.hgetall("STATS_FILE_2026_11_25") == {"/old.iso": "4"}
        assert db.hgetall("STATS_FILE_2026_11_26") == {"/new.iso": "1"}
    finally:
        await within(daemon.stopService())
        await within(redis_service.stopService())
        db.close()
        server.stop()


@pytest_twisted.ensureDeferred
async def test_a_busy_daemon_still_writes_what_the_spool_holds(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis, stats_log: list[str]
) -> None:
    """A download in every flush interval (``Workers: 1`` under load): the kept batches go
    with the daemon's own flushes, not after an idle tick that never comes."""
    spool = tmp_path / "spool"
    arguments = (b"STATS_FILE", b"STATS_MIRROR", b"STATS_MIRROR_BYTES", b"7",
                 b"10\x007\x00/kept.iso\x00", b"3600", b"", b"_2026", b"_2026_11", b"_2026_11_25")
    kept = statsspool.save(str(spool), [statsspool.SpooledBatch("kept:1", 7, arguments)])
    redis_service = await started_service(redis_server)
    clock = clock_at(at(2026, 11, 25, 12))
    daemon = started_stats(redis_service, clock, spool, replays=True)
    try:
        for _ in range(4):
            daemon.count_download(2, "/busy.iso", 1)
            clock.advance(0.5)
            await within(daemon.when_idle())
        assert not os.path.exists(kept)
        assert redis_db.get("STATS_TOTAL") == "11"
        assert redis_db.hget("STATS_FILE_2026_11_25", "/kept.iso") == "7"
    finally:
        await within(daemon.stopService())
        await within(redis_service.stopService())
