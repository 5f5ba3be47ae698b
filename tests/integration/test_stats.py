"""Download statistics against a real redis-server: flushing, outages, reading, Range de-dup.

The flush loop runs on a ``Clock``; Redis I/O (a real ``RedisService``) on the real reactor.
"""

from __future__ import annotations

import hashlib
import re
import signal
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import redis
import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from mirrorbits.stats import (
    RangeDeduplicator,
    StatsService,
    file_stats,
    stats_files,
    stats_mirror,
)
from mirrorbits.store import keys
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.redis import RedisService
from mirrorbits.store.statistics import mirrors_downloads_per_day
from tests.integration.store_support import eventually, started_service
from tests.servers import RedisServer, ReplicatedRedis, free_port

pytestmark = pytest.mark.integration

KEPT = "Uncommited stats kept in-memory"


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
       micro: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC).timestamp()


def clock_at(seconds: float) -> Clock:
    clock = Clock()
    clock.advance(seconds)
    return clock


async def within(d: Deferred[Any], seconds: float = 10.0) -> Any:
    """Await ``d``, failing the test instead of hanging."""
    return await d.addTimeout(seconds, reactor)


async def connect(server: RedisServer) -> Any:
    return await within(
        txredisapi.Connection(server.host, server.port, dbid=0, convertNumbers=False)
    )


@pytest_twisted.async_yield_fixture
async def redis_service(
    redis_server: RedisServer, redis_db: redis.Redis
) -> Any:
    """A started RedisService on the session's (emptied) redis-server."""
    service = await started_service(redis_server)
    yield service
    await within(service.stopService())


def stats_keys(db: redis.Redis) -> dict[str, Any]:
    """Every STATS_* key with its value (hash -> dict, string -> str)."""
    found: dict[str, Any] = {}
    for name in db.keys("STATS_*"):
        assert isinstance(name, str)
        found[name] = db.get(name) if db.type(name) == "string" else db.hgetall(name)
    return found


def levels(prefix: str, day: date, value: dict[str, str]) -> dict[str, dict[str, str]]:
    return {prefix + suffix: value for suffix in keys.stats_suffixes(day.year, day.month, day.day)}


async def flush(service: StatsService, clock: Clock) -> None:
    clock.advance(0.5)
    await within(service.when_idle())


@pytest_twisted.ensureDeferred
async def test_flush_writes_four_levels_of_files_mirrors_and_bytes(
    redis_service: RedisService, redis_db: redis.Redis
) -> None:
    clock = clock_at(at(2026, 11, 25, 12, 0, 0))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    assert service.name == "stats"
    service.startService()
    try:
        service.count_download(3, "/a.txt", 100)
        service.count_download(3, "/a.txt", 100)
        service.count_download(4, "/a.txt", 100)
        service.count_download(3, "/dir/b.bin", 5000)
        service.count_download(0, "/pool/main/x.tar.xz", 2048)  # first fallback
        service.count_download(-2, "/pool", 0)  # directory fallback: no bytes entry
        service.count_download(-2, "", 0)  # the root's fallback: not counted
        clock.advance(0.49)
        assert stats_keys(redis_db) == {}  # nothing is written per request
        await flush(service, clock)
        day = date(2026, 11, 25)
        files = {"/a.txt": "3", "/dir/b.bin": "1", "/pool/main/x.tar.xz": "1", "/pool": "1"}
        expected = {
            **levels("STATS_FILE", day, files),
            **levels("STATS_MIRROR", day, {"3": "3", "4": "1", "0": "1", "-2": "1"}),
            **levels("STATS_MIRROR_BYTES", day, {"3": "5200", "4": "100", "0": "2048"}),
            "STATS_TOTAL": "6",
        }
        assert stats_keys(redis_db) == expected
        assert service.pending_downloads() == 0
        # The batch is recorded (an hour) so that it is never written twice.
        (record,) = redis_db.keys("STATSBATCH_*")
        assert redis_db.get(record) == "1"
        assert 3590 <= redis_db.ttl(record) <= 3600

        service.count_download(4, "/a.txt", 100)
        await flush(service, clock)
        after = stats_keys(redis_db)
        assert after["STATS_TOTAL"] == "7"
        assert after["STATS_FILE_2026_11_25"]["/a.txt"] == "4"
        assert after["STATS_MIRROR_2026_11"]["4"] == "2"
        assert after["STATS_MIRROR_BYTES"]["4"] == "200"
        await flush(service, clock)  # nothing new: nothing written
        assert stats_keys(redis_db) == after
        assert len(redis_db.keys("STATSBATCH_*")) == 2
    finally:
        await within(service.stopService())


class TurnClock(Clock):
    """A ``Clock`` whose :meth:`advance` is one reactor turn: it runs the calls due when it
    starts, and a call made meanwhile (``callLater(0)``) waits for the next turn, as in the
    reactor (``Clock`` itself would run it in the same ``advance``)."""

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        self._sortCalls()
        for call in [call for call in self.calls if call.getTime() <= self.seconds()]:
            if call in self.calls:  # not cancelled by an earlier one
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


def due_now(clock: Clock) -> int:
    """Calls waiting for the next turn of ``clock`` (the flush loop's own is 0.5 s ahead)."""
    return sum(call.getTime() <= clock.seconds() for call in clock.getDelayedCalls())


async def sealing_started(clock: Clock, seconds: float = 10.0) -> None:
    """Wait (real reactor, bounded) until the flush has a slice waiting for ``clock``."""
    deadline = reactor.seconds() + seconds
    while not due_now(clock):
        assert reactor.seconds() < deadline, "the flush never started encoding"
        await deferLater(reactor, 0.01, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_large_batch_is_encoded_a_slice_per_reactor_turn_then_written_whole(
    redis_service: RedisService, redis_db: redis.Redis
) -> None:
    """A flush of thousands of files does not hold the reactor for one long turn (the
    worker's requests wait behind it: the p99): at most ``encode_slice`` counters a turn."""
    clock = TurnClock()
    clock.advance(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5, encode_slice=1000)
    service.startService()
    try:
        for n in range(2500):  # 2,500 file counters + 1 mirror + 1 bytes: three slices
            service.count_download(7, f"/f/{n}.iso", 10)
        clock.advance(0.5)
        await sealing_started(clock)
        turns = 0
        while not stats_keys(redis_db):  # nothing is sent before the batch is encoded
            assert turns < 2, "more turns than slices"
            clock.advance(0)
            turns += 1
            await deferLater(reactor, 0.05, lambda: None)
        assert turns == 2
        await within(service.when_idle())
        day = date(2026, 11, 25)
        assert stats_keys(redis_db) == {
            **levels("STATS_FILE", day, {f"/f/{n}.iso": "1" for n in range(2500)}),
            **levels("STATS_MIRROR", day, {"7": "2500"}),
            **levels("STATS_MIRROR_BYTES", day, {"7": "25000"}),
            "STATS_TOTAL": "2500",
        }
        assert service.pending_downloads() == 0
    finally:
        await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_a_batch_stopped_while_encoded_is_committed_by_the_final_flush(
    redis_service: RedisService, redis_db: redis.Redis
) -> None:
    """Stopping between two slices loses nothing: the batch is kept from its sealing on."""
    clock = TurnClock()
    clock.advance(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5, encode_slice=100)
    service.startService()
    stopped = False
    try:
        for n in range(250):
            service.count_download(7, f"/f/{n}.iso", 10)
        clock.advance(0.5)
        await sealing_started(clock)
        assert service.pending_downloads() == 250
        stopping = service.stopService()
        stopped = True
        for _ in range(5):
            clock.advance(0)
            await deferLater(reactor, 0.05, lambda: None)
        await within(stopping)
        written = stats_keys(redis_db)
        assert written["STATS_TOTAL"] == "250"
        assert len(written["STATS_FILE_2026_11_25"]) == 250
        assert service.pending_downloads() == 0
    finally:
        if not stopped:
            await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_odd_file_names_are_counted_under_their_exact_bytes(
    redis_service: RedisService, redis_server: RedisServer
) -> None:
    """Names with spaces, tabs, newlines, '%' and bytes that are not UTF-8 all count.

    Before the payload flush, a name that is not UTF-8 made every flush fail, so no
    statistic at all was written any more.
    """
    clock = clock_at(at(2026, 11, 25, 12, 0, 0))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    service.startService()
    names = ["/a b\tc\nd.iso", "/100%.txt", "/caf\udce9.iso", "/\u00e9t\u00e9.txt"]
    try:
        for name in names:
            service.count_download(7, name, 10)
        await flush(service, clock)
        raw = redis.Redis(host=redis_server.host, port=redis_server.port)
        try:
            stored = raw.hgetall("STATS_FILE_2026_11_25")
            assert stored == {n.encode("utf-8", "surrogateescape"): b"1" for n in names}
            assert raw.hgetall("STATS_FILE") == stored
            assert raw.hget("STATS_MIRROR_BYTES_2026", "7") == b"40"
            assert raw.get("STATS_TOTAL") == b"4"
        finally:
            raw.close()
        assert service.pending_downloads() == 0
    finally:
        await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_a_refused_increment_is_reported_and_the_rest_is_written(
    redis_service: RedisService, redis_db: redis.Redis, stats_log: list[str]
) -> None:
    redis_db.set("STATS_FILE_2026_11", "not a hash")
    clock = clock_at(at(2026, 11, 25, 12, 0, 0))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    service.startService()
    try:
        service.count_download(7, "/a.txt", 10)
        await flush(service, clock)
        assert redis_db.get("STATS_FILE_2026_11") == "not a hash"
        assert redis_db.hgetall("STATS_FILE_2026_11_25") == {"/a.txt": "1"}
        assert redis_db.hgetall("STATS_FILE_2026") == {"/a.txt": "1"}
        assert redis_db.hgetall("STATS_MIRROR") == {"7": "1"}
        assert redis_db.get("STATS_TOTAL") == "1"
        assert stats_log == ["1 statistics increments were refused by Redis"]
        assert service.pending_downloads() == 0  # not retried: that would count twice
    finally:
        await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_days_are_utc_and_roll_over_inside_one_flush(
    redis_service: RedisService, redis_db: redis.Redis
) -> None:
    clock = clock_at(at(2026, 12, 31, 23, 59, 59, 800000))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    service.startService()
    try:
        service.count_download(1, "/f", 10)
        clock.advance(0.3)  # 2027-01-01 00:00:00.1 UTC
        service.count_download(1, "/f", 10)
        clock.advance(0.2)
        await within(service.when_idle())
        assert stats_keys(redis_db) == {
            "STATS_FILE_2026_12_31": {"/f": "1"},
            "STATS_FILE_2026_12": {"/f": "1"},
            "STATS_FILE_2026": {"/f": "1"},
            "STATS_FILE_2027_01_01": {"/f": "1"},
            "STATS_FILE_2027_01": {"/f": "1"},
            "STATS_FILE_2027": {"/f": "1"},
            "STATS_FILE": {"/f": "2"},
            "STATS_MIRROR_2026_12_31": {"1": "1"},
            "STATS_MIRROR_2026_12": {"1": "1"},
            "STATS_MIRROR_2026": {"1": "1"},
            "STATS_MIRROR_2027_01_01": {"1": "1"},
            "STATS_MIRROR_2027_01": {"1": "1"},
            "STATS_MIRROR_2027": {"1": "1"},
            "STATS_MIRROR": {"1": "2"},
            "STATS_MIRROR_BYTES_2026_12_31": {"1": "10"},
            "STATS_MIRROR_BYTES_2026_12": {"1": "10"},
            "STATS_MIRROR_BYTES_2026": {"1": "10"},
            "STATS_MIRROR_BYTES_2027_01_01": {"1": "10"},
            "STATS_MIRROR_BYTES_2027_01": {"1": "10"},
            "STATS_MIRROR_BYTES_2027": {"1": "10"},
            "STATS_MIRROR_BYTES": {"1": "20"},
            "STATS_TOTAL": "2",
        }
    finally:
        await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_counters_survive_a_database_that_is_not_ready(
    redis_service: RedisService, redis_db: redis.Redis, stats_log: list[str]
) -> None:
    ready = False

    def sessions() -> Any:
        if not ready:
            raise DatabaseNotReady("database not ready")
        return redis_service.session()

    clock = clock_at(at(2026, 11, 25, 12))
    service = StatsService(sessions, clock, flush_interval=0.5)
    service.startService()
    try:
        for tick in range(4):
            service.count_download(1, "/a", 1)
            await flush(service, clock)
            assert service.pending_downloads() == tick + 1
        assert stats_keys(redis_db) == {}
        assert [m for m in stats_log if KEPT in m] == [f"{KEPT}: database not ready"]
        ready = True
        service.count_download(2, "/b", 5)
        await flush(service, clock)
        assert service.pending_downloads() == 0
        written = stats_keys(redis_db)
        assert written["STATS_TOTAL"] == "5"
        assert written["STATS_FILE_2026_11_25"] == {"/a": "4", "/b": "1"}
        assert written["STATS_MIRROR_BYTES"] == {"1": "4", "2": "5"}
        assert "Statistics written again (5 download(s) kept meanwhile)" in stats_log
        # A new outage warns again, once.
        ready = False
        service.count_download(1, "/a", 1)
        await flush(service, clock)
        await flush(service, clock)
        assert len([m for m in stats_log if KEPT in m]) == 2
    finally:
        ready = True
        await within(service.stopService())
    assert stats_keys(redis_db)["STATS_TOTAL"] == "6"  # the final flush at stop


@pytest_twisted.ensureDeferred
async def test_counters_kept_while_redis_is_down_and_flushed_when_it_returns(
    tmp_path: Path, stats_log: list[str]
) -> None:
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    redis_service = await started_service(server)
    clock = clock_at(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    service.startService()
    try:
        service.count_download(7, "/kept.iso", 1000)
        server.stop()
        for _ in range(12):  # 6 s of ticks while Redis is gone
            service.count_download(7, "/kept.iso", 1000)
            clock.advance(0.5)
            await deferLater(reactor, 0.01, lambda: None)
        assert service.pending_downloads() == 13
        assert len([m for m in stats_log if KEPT in m]) == 1  # warned once per outage

        server.start()  # same port, empty database
        for _ in range(400):  # bounded: about 20 s of reconnection attempts
            clock.advance(0.5)
            await within(service.when_idle(), 30)
            if service.pending_downloads() == 0:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert service.pending_downloads() == 0
        db = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        try:
            assert stats_keys(db) == {
                **levels("STATS_FILE", date(2026, 11, 25), {"/kept.iso": "13"}),
                **levels("STATS_MIRROR", date(2026, 11, 25), {"7": "13"}),
                **levels("STATS_MIRROR_BYTES", date(2026, 11, 25), {"7": "13000"}),
                "STATS_TOTAL": "13",
            }
        finally:
            db.close()
    finally:
        await within(service.stopService())
        await within(redis_service.stopService())
        server.stop()


@pytest_twisted.ensureDeferred
async def test_stop_service_commits_what_is_left(
    redis_service: RedisService, redis_db: redis.Redis
) -> None:
    clock = clock_at(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    service.startService()
    service.count_download(5, "/last.bin", 42)
    clock.advance(0.2)  # SIGTERM before the next flush
    await within(service.stopService())
    assert clock.getDelayedCalls() == []  # the loop is stopped
    assert stats_keys(redis_db)["STATS_FILE_2026_11_25"] == {"/last.bin": "1"}
    assert redis_db.get(keys.STATS_TOTAL) == "1"
    assert redis_db.hget("STATS_MIRROR_BYTES", "5") == "42"


@pytest_twisted.ensureDeferred
async def test_a_silent_redis_stalls_flushes_and_stop_is_bounded(
    tmp_path: Path, stats_log: list[str]
) -> None:
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    redis_service = await started_service(server)
    clock = clock_at(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    service.startService()
    assert server.process is not None
    try:
        service.count_download(1, "/a", 1)
        server.process.send_signal(signal.SIGSTOP)  # alive, but answers nothing
        clock.advance(0.5)  # the script is sent, never answered
        service.count_download(1, "/a", 1)
        for _ in range(9):
            clock.advance(0.5)
        assert [m for m in stats_log if KEPT in m] == []
        clock.advance(0.5)  # 5 s without an answer
        assert [m for m in stats_log if KEPT in m] == [
            f"{KEPT}: Redis has not answered for 5 s"
        ]
        assert service.pending_downloads() == 2
        stopped = service.stopService()
        assert not stopped.called
        clock.advance(service.stop_timeout)
        await within(stopped)
        assert "Could not commit 2 download(s) at shutdown" in stats_log
    finally:
        server.process.send_signal(signal.SIGCONT)
        await within(redis_service.stopService())
        server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Any:
    """A redis-server of this test only (its settings and role are changed)."""
    server = RedisServer(workdir=tmp_path / "private-redis")
    server.start()
    yield server
    server.stop()


async def flush_until_written(service: StatsService, clock: Clock, seconds: float = 20) -> None:
    """Run flushes (on ``clock``) until nothing waits; bounded in real time."""
    deadline = reactor.seconds() + seconds
    while service.pending_downloads():
        assert reactor.seconds() < deadline, f"{service.pending_downloads()} still pending"
        await flush(service, clock)
        await deferLater(reactor, 0.05, lambda: None)


def count_some(service: StatsService, clock: Clock, rounds: int) -> int:
    """A few downloads of two files on two mirrors, per round; how many."""
    for _ in range(rounds):
        service.count_download(1, "/a.iso", 1000)
        service.count_download(2, "/a.iso", 1000)
        service.count_download(2, "/b.txt", 10)
    return 3 * rounds


def expected_counts(rounds: int, day: date) -> dict[str, Any]:
    return {
        **levels("STATS_FILE", day, {"/a.iso": str(2 * rounds), "/b.txt": str(rounds)}),
        **levels("STATS_MIRROR", day, {"1": str(rounds), "2": str(2 * rounds)}),
        **levels("STATS_MIRROR_BYTES", day, {"1": str(1000 * rounds),
                                             "2": str(1010 * rounds)}),
        "STATS_TOTAL": str(3 * rounds),
    }


@pytest_twisted.ensureDeferred
async def test_flushes_refused_for_memory_are_kept_and_written_once_when_accepted(
    private_redis: RedisServer, stats_log: list[str]
) -> None:
    """``OOM command not allowed`` (maxmemory, noeviction): nothing is lost or counted twice.

    Before: each increment was refused on its own (``redis.pcall``), the batch was taken as
    written, and its downloads were gone.
    """
    db = private_redis.client()
    redis_service = await started_service(private_redis)
    clock = clock_at(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    service.startService()
    try:
        count_some(service, clock, 1)
        await flush(service, clock)  # written while memory is available
        db.config_set("maxmemory-policy", "noeviction")
        db.config_set("maxmemory", "1")  # any write that may allocate is refused
        for _ in range(6):
            count_some(service, clock, 5)
            await flush(service, clock)
        assert service.pending_downloads() == 90
        assert stats_keys(db)["STATS_TOTAL"] == "3"
        assert [m for m in stats_log if KEPT in m] == [
            f"{KEPT}: OOM command not allowed when used memory > 'maxmemory'."]
        assert not any("refused by Redis" in m for m in stats_log)

        db.config_set("maxmemory", "0")
        count_some(service, clock, 1)
        await flush_until_written(service, clock)
        assert stats_keys(db) == expected_counts(32, date(2026, 11, 25))
        assert "Statistics written again (93 download(s) kept meanwhile)" in stats_log
        assert len(db.keys("STATSBATCH_*")) == 3  # one before, one refused then, one after
    finally:
        db.config_set("maxmemory", "0")
        await within(service.stopService())
        await within(redis_service.stopService())
        db.close()
    assert service.pending_downloads() == 0


@pytest_twisted.ensureDeferred
async def test_flushes_refused_by_a_replica_are_kept_and_written_once_it_is_master_again(
    private_redis: RedisServer, stats_log: list[str]
) -> None:
    """``READONLY You can't write against a read only replica``, then back to master."""
    db = private_redis.client()
    redis_service = await started_service(private_redis)
    clock = clock_at(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5)
    service.startService()
    nowhere = free_port()
    try:
        count_some(service, clock, 2)
        await flush(service, clock)
        db.execute_command("REPLICAOF", "127.0.0.1", str(nowhere))  # keeps its data
        count_some(service, clock, 2)
        await flush(service, clock)  # before the service notices the new role
        assert [m for m in stats_log if KEPT in m] == [
            f"{KEPT}: READONLY You can't write against a read only replica."]
        rounds = 4
        for _ in range(100):  # then the service notices (within about a second)
            count_some(service, clock, 1)
            rounds += 1
            await flush(service, clock)
            if not redis_service.ready:
                break
            await deferLater(reactor, 0.1, lambda: None)
        assert not redis_service.ready
        assert service.pending_downloads() == 3 * (rounds - 2)
        assert stats_keys(db)["STATS_TOTAL"] == "6"

        db.execute_command("REPLICAOF", "NO", "ONE")
        await flush_until_written(service, clock)
        assert stats_keys(db) == expected_counts(rounds, date(2026, 11, 25))
    finally:
        db.execute_command("REPLICAOF", "NO", "ONE")
        await within(service.stopService())
        await within(redis_service.stopService())
        db.close()


async def link_generation(redis_service: RedisService) -> int:
    async with redis_service.session() as lent:
        return lent.generation


@pytest.fixture
def replicated(tmp_path: Path) -> Any:
    """A master and its replica (no sentinel)."""
    group = ReplicatedRedis.start(tmp_path / "group", sentinels=0)
    yield group
    group.stop()


@pytest_twisted.ensureDeferred
async def test_batches_are_kept_until_a_replica_has_them_and_replayed_once_on_a_new_link(
    replicated: ReplicatedRedis, stats_log: list[str]
) -> None:
    master, replica = replicated.master, replicated.replica
    assert replica.process is not None
    db = master.client()
    redis_service = await started_service(master)
    clock = clock_at(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5, replica_timeout=0.3)
    service.startService()
    try:
        count_some(service, clock, 1)
        await flush_until_written(service, clock)  # the replica acknowledged it

        replica.process.send_signal(signal.SIGSTOP)  # connected, but acknowledges nothing
        count_some(service, clock, 2)
        await flush(service, clock)
        count_some(service, clock, 1)
        await flush(service, clock)
        assert service.pending_downloads() == 9  # written, kept for a failover
        assert stats_keys(db)["STATS_TOTAL"] == "12"
        assert [m for m in stats_log if "No replica acknowledged" in m][-1] == (
            "No replica acknowledged the statistics within 0.3 s: 6 download(s) kept to be "
            "written again after a failover")

        before = await link_generation(redis_service)
        db.execute_command("CLIENT", "KILL", "TYPE", "normal")  # a new link, same master
        for _ in range(100):
            await deferLater(reactor, 0.1, lambda: None)
            if redis_service.ready and await link_generation(redis_service) > before:
                break
        await flush(service, clock)  # sent again: recognised, not counted twice
        assert "Statistics batches sent again to a new master: 2 (0 download(s) it lacked, " \
               "2 batch(es) it had already)" in stats_log
        assert stats_keys(db) == expected_counts(4, date(2026, 11, 25))
        assert service.pending_downloads() == 9

        replica.process.send_signal(signal.SIGCONT)
        await flush_until_written(service, clock)  # renews the last batch's record, WAITs
        assert stats_keys(db) == expected_counts(4, date(2026, 11, 25))
        with replica.client() as copy:
            await eventually(lambda: stats_keys(copy) == expected_counts(4, date(2026, 11, 25)))

        replica.process.send_signal(signal.SIGSTOP)  # kept at most keep_seconds
        count_some(service, clock, 1)
        await flush(service, clock)
        assert service.pending_downloads() == 3
        clock.advance(service.keep_seconds + 1)
        await within(service.when_idle())
        assert service.pending_downloads() == 0
        assert ("3 download(s) written to Redis were never confirmed by a replica: no longer "
                "kept for a failover") in stats_log
    finally:
        replica.process.send_signal(signal.SIGCONT)
        await within(service.stopService())
        await within(redis_service.stopService())
        db.close()


@pytest_twisted.ensureDeferred
async def test_memory_bound_beyond_which_files_count_in_the_totals_only(
    redis_service: RedisService, redis_db: redis.Redis, stats_log: list[str]
) -> None:
    clock = clock_at(at(2026, 11, 25, 12))
    service = StatsService(redis_service.session, clock, flush_interval=0.5, max_file_counters=2)
    service.startService()
    try:
        for path in ["/1", "/2", "/3", "/1", "/4"]:
            service.count_download(9, path, 10)
        assert stats_log == ["Statistics memory full (2 files waiting to be written): further "
                             "files are counted in the totals only until Redis takes the counters"]
        await flush(service, clock)
        written = stats_keys(redis_db)
        assert written["STATS_FILE"] == {"/1": "2", "/2": "1"}
        assert written["STATS_TOTAL"] == "5"
        assert written["STATS_MIRROR"] == {"9": "5"}
        assert written["STATS_MIRROR_BYTES"] == {"9": "50"}
        assert stats_log[-1] == "2 download(s) were counted without their file (memory was full)"
        service.count_download(9, "/3", 10)  # room again
        await flush(service, clock)
        assert stats_keys(redis_db)["STATS_FILE"] == {"/1": "2", "/2": "1", "/3": "1"}
    finally:
        await within(service.stopService())


def dedup(conn: Any, set_get: bool, interval: int = 300) -> RangeDeduplicator:
    return RangeDeduplicator(lambda: conn, interval, lambda: set_get)


@pytest.mark.parametrize("set_get", [True, False], ids=["SET-GET", "GET+SET"])
@pytest_twisted.ensureDeferred
async def test_range_requests_are_counted_once_per_client_and_interval(
    redis_server: RedisServer, redis_db: redis.Redis, set_get: bool
) -> None:
    conn = await connect(redis_server)
    try:
        deduplicator = dedup(conn, set_get)
        ip, path = "2001:db8:cafe::20", "/media/install image.img"

        async def ask(agent: str, has_range: bool = True) -> bool:
            return await deduplicator.should_count(ip, agent, path, has_range)

        assert [await ask("conf-agent/1") for _ in range(3)] == [True, False, False]
        assert await ask("conf-agent/2") is True
        assert await ask("conf-agent/1") is False
        assert await ask("conf-agent/1", has_range=False) is True
        # The key recorded from the reference for this client and path.
        key = ("DOWNLOADED_56bb3c5432dfb6946a7cbda08e9c25b8f658c933a457dcd8ddbbd95c992c217b_"
               "/media/install image.img")
        assert sorted(redis_db.keys("DOWNLOADED_*")) == sorted(
            [key, keys.downloaded(hashlib.sha256(f"{ip}/conf-agent/2".encode()).hexdigest(),
                                  path)]
        )
        assert redis_db.get(key) == "1"
        assert redis_db.ttl(key) == 300
        redis_db.expire(key, 10)
        assert await ask("conf-agent/1") is False
        assert redis_db.ttl(key) == 300  # each Range request renews the interval
        redis_db.delete(key)
        assert await ask("conf-agent/1") is True  # interval over: counted again
    finally:
        await conn.disconnect()


@pytest_twisted.ensureDeferred
async def test_range_dedup_disabled_or_database_unavailable(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    conn = await connect(redis_server)
    try:
        disabled = dedup(conn, True, interval=0)
        assert [await disabled.should_count("1.2.3.4", "ua", "/f", True) for _ in range(2)] == [
            True, True
        ]
        assert redis_db.keys("DOWNLOADED_*") == []

        def not_ready() -> Any:
            raise DatabaseNotReady("database not ready")

        unavailable = RangeDeduplicator(not_ready, 300, lambda: True)
        assert await unavailable.should_count("1.2.3.4", "ua", "/f", True) is True
    finally:
        await conn.disconnect()


@pytest_twisted.ensureDeferred
async def test_file_stats_answers(redis_server: RedisServer, redis_db: redis.Redis) -> None:
    path = "/pool/main/tool_2.4.1_arm64.deb"
    for key, value in [
        ("STATS_FILE_2026_11_25", 4), ("STATS_FILE_2026_11", 6), ("STATS_FILE_2026", 9),
        ("STATS_FILE", 12), ("STATS_FILE_2026_011", 2), ("STATS_FILE_2026_11_24", 1),
    ]:
        redis_db.hset(key, path, value)
    redis_db.hset("STATS_FILE_2026_11_25", "/other", 99)
    conn = await connect(redis_server)
    today = date(2026, 11, 25)

    async def answer(period: str | None, for_path: str = path) -> dict[str, Any]:
        return await file_stats(conn, for_path, period, today)

    try:
        summary = {"Today": 4, "Month": 6, "Year": 9, "Total": 12}
        assert await answer(None) == summary
        assert await answer("") == summary
        assert await answer("--") == summary
        assert list((await answer(None)).keys()) == ["Today", "Month", "Year", "Total"]
        assert await answer("2026") == {"Period": "2026", "Downloads": 9}
        assert await answer("2026-11") == {"Period": "2026-11", "Downloads": 6}
        assert await answer("2026-11-24") == {"Period": "2026-11-24", "Downloads": 1}
        assert await answer("2026-011") == {"Period": "2026-011", "Downloads": 2}
        assert await answer("2023") == {"Period": "2023", "Downloads": 0}
        assert await answer(None, "/never") == {"Today": 0, "Month": 0, "Year": 0, "Total": 0}
        for bad in ("abc", "2026-x", "2026-11-25-9", "2026-1.5", "99999999999999999999"):
            with pytest.raises(ValueError, match="Invalid period"):
                await answer(bad)
    finally:
        await conn.disconnect()


@pytest_twisted.ensureDeferred
async def test_cli_range_reading(redis_server: RedisServer, redis_db: redis.Redis) -> None:
    ranges: list[tuple[str, dict[str, str], int, int]] = [
        ("_2025", {"/a": "5", "/b": "1"}, 6, 600),
        ("_2026_03", {"/a": "2"}, 2, 200),
        ("_2026_11_24", {"/a": "1", "/c": "7"}, 8, 800),
        ("_2026_11_25", {"/a": "100"}, 100, 10000),  # the end day: excluded
        ("", {"/a": "1000"}, 1000, 100000),  # totals are never read for a range
    ]
    for suffix, files, mirror, size in ranges:
        for name, count in files.items():
            redis_db.hset("STATS_FILE" + suffix, name, count)
        redis_db.hset("STATS_MIRROR" + suffix, "3", mirror)
        redis_db.hset("STATS_MIRROR_BYTES" + suffix, "3", size)
    conn = await connect(redis_server)
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    try:
        assert await stats_files(conn, re.compile("a|c"), start, end) == {"/a": 8, "/c": 7}
        assert await stats_files(conn, re.compile(r"^/b$"), start, end) == {"/b": 1}
        assert await stats_files(conn, re.compile("."), end, end) == {"/a": 100}
        assert await stats_mirror(conn, 3, start, end) == (16, 1600)
        assert await stats_mirror(conn, 4, start, end) == (0, 0)
    finally:
        await conn.disconnect()


@pytest_twisted.ensureDeferred
async def test_mirror_counters_of_many_days_in_one_transaction(
    redis_server: RedisServer, redis_db: redis.Redis,
) -> None:
    days = [date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2)]
    redis_db.hset("STATS_MIRROR_2026_11_29", mapping={"1": 5, "2": "x"})
    redis_db.hset("STATS_MIRROR_BYTES_2026_11_29", mapping={"1": 500})
    redis_db.set("STATS_MIRROR_2026_11_30", "not a hash")
    redis_db.hset("STATS_MIRROR_2026_12_02", mapping={"2": 7, "3": 1})
    redis_db.hset("STATS_MIRROR_BYTES_2026_12_02", mapping={"2": 70})
    redis_db.config_resetstat()
    conn = await connect(redis_server)
    try:
        counters = await within(Deferred.fromCoroutine(
            mirrors_downloads_per_day(conn, [1, 2], days)))
        assert counters == [{1: (5, 500), 2: (0, 0)}, None, {1: (0, 0), 2: (0, 0)},
                            {1: (0, 0), 2: (7, 70)}]
        calls = {name: stats["calls"] for name, stats in redis_db.info("commandstats").items()}
        assert (calls["cmdstat_multi"], calls["cmdstat_hmget"]) == (1, 8)
        assert await mirrors_downloads_per_day(conn, [], days) == [{}, {}, {}, {}]
    finally:
        await conn.disconnect()
