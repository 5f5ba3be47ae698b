"""Database format versions against a real redis-server: fresh, v0→v1→v2, v1→v2, lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
import redis
import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from mirrorbits.store import keys
from mirrorbits.store.dbversion import UnsupportedDatabaseVersion, UpgradeLock, ensure_db_version
from tests.integration.store_support import (
    captured_log,
    eventually,
    sleep,
    started_service,
    within,
)
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

WAITING = "Database upgrade running. Waiting for completion..."


@pytest_twisted.async_yield_fixture
async def client(redis_server: RedisServer, redis_db: redis.Redis) -> AsyncIterator[Any]:
    conn = await within(txredisapi.Connection(
        redis_server.host, redis_server.port, dbid=0, convertNumbers=False))
    yield conn
    await conn.disconnect()


def dump(db: redis.Redis) -> dict[str, Any]:
    """Every key: strings as text, hashes as dicts, sets as sorted lists, lists as lists."""
    found: dict[str, Any] = {}
    for name in db.scan_iter("*"):
        kind = db.type(name)
        if kind == "string":
            found[name] = db.get(name)
        elif kind == "hash":
            found[name] = db.hgetall(name)
        elif kind == "set":
            found[name] = sorted(db.smembers(name))
        elif kind == "list":
            found[name] = db.lrange(name, 0, -1)
    return found


@pytest_twisted.ensureDeferred
async def test_fresh_database_gets_version_2(client: Any, redis_db: redis.Redis) -> None:
    assert await ensure_db_version(client, reactor) == 2
    assert dump(redis_db) == {keys.DB_VERSION: "2"}


@pytest_twisted.ensureDeferred
async def test_current_database_is_left_alone(client: Any, redis_db: redis.Redis) -> None:
    redis_db.set(keys.DB_VERSION, "2")
    redis_db.hset(keys.MIRRORS, "1", "m")
    assert await ensure_db_version(client, reactor) == 2
    assert dump(redis_db) == {keys.DB_VERSION: "2", keys.MIRRORS: {"1": "m"}}


@pytest_twisted.ensureDeferred
async def test_newer_database_is_refused(client: Any, redis_db: redis.Redis) -> None:
    redis_db.set(keys.DB_VERSION, "3")
    with pytest.raises(UnsupportedDatabaseVersion) as info:
        await ensure_db_version(client, reactor)
    assert str(info.value) == "unsupported database version, please upgrade mirrorbits"
    assert redis_db.get(keys.DB_VERSION) == "3"


def build_v0(db: redis.Redis) -> None:
    """A version-0 database: everything keyed by mirror name (one mirror is named "2")."""
    db.rpush(keys.MIRRORS, "alpha", "beta", "2")
    db.hset("MIRROR_alpha", mapping={"http": "http://a.example/", "up": "1",
                                     "excludeReason": "", "enabled": "1", "score": "10"})
    db.hset("MIRROR_beta", mapping={"http": "https://b.example/", "up": "0",
                                    "excludeReason": "Unreachable", "enabled": "0"})
    db.hset("MIRROR_2", mapping={"http": "c.example/", "up": "1", "enabled": "1"})
    db.sadd("MIRROR_alpha_FILES", "/a", "/b")
    db.sadd("MIRROR_2_FILES", "/a")
    db.sadd("HANDLEDFILES_alpha", "/a")
    db.sadd("HANDLEDFILES_2", "/a")
    db.hset("FILEINFO_alpha_/a", mapping={"size": "1", "modTime": "2024-01-02 03:04:05 +0000 UTC"})
    db.hset("FILEINFO_alpha_/b", mapping={"size": "10"})
    db.hset("FILEINFO_2_/a", mapping={"size": "2"})
    db.hset("FILEINFO_gone_/a", mapping={"size": "3"})  # a mirror deleted long ago
    db.sadd("FILEMIRRORS_/a", "alpha", "2", "gone")
    db.sadd("FILEMIRRORS_/b", "alpha")
    db.sadd("FILEMIRRORS_/c", "gone")
    db.hset("STATS_MIRROR", mapping={"alpha": "5", "2": "3", "gone": "9"})
    db.hset("STATS_MIRROR_2026_11_25", mapping={"beta": "1"})
    db.hset("STATS_MIRROR_BYTES_2026", mapping={"gone": "100"})
    db.sadd(keys.FILES, "/a", "/b")
    db.hset("STATS_FILE", mapping={"/a": "7"})
    db.set("V1_leftover", "from an interrupted upgrade")


V0_UPGRADED = {
    keys.DB_VERSION: "2",
    keys.LAST_MID: "3",
    keys.MIRRORS: {"1": "alpha", "2": "beta", "3": "2"},
    "MIRROR_1": {"ID": "1", "name": "alpha", "http": "http://a.example/", "httpUp": "1",
                 "httpDownReason": "", "enabled": "1", "score": "10"},
    "MIRROR_2": {"ID": "2", "name": "beta", "http": "https://b.example/", "httpsUp": "0",
                 "httpsDownReason": "Unreachable", "enabled": "0"},
    "MIRROR_3": {"ID": "3", "name": "2", "http": "c.example/", "httpUp": "1", "enabled": "1"},
    "MIRRORFILES_1": ["/a", "/b"],
    "MIRRORFILES_3": ["/a"],
    "HANDLEDFILES_1": ["/a"],
    "HANDLEDFILES_3": ["/a"],
    "FILEINFO_1_/a": {"size": "1", "modTime": "2024-01-02 03:04:05 +0000 UTC"},
    "FILEINFO_1_/b": {"size": "10"},
    "FILEINFO_3_/a": {"size": "2"},
    "FILEINFO_gone_/a": {"size": "3"},
    "FILEMIRRORS_/a": ["1", "3"],
    "FILEMIRRORS_/b": ["1"],
    "STATS_MIRROR": {"1": "5", "3": "3"},
    "STATS_MIRROR_2026_11_25": {"2": "1"},
    keys.FILES: ["/a", "/b"],
    "STATS_FILE": {"/a": "7"},
}


@pytest_twisted.ensureDeferred
async def test_version_0_is_upgraded_to_1_then_2(client: Any, redis_db: redis.Redis) -> None:
    build_v0(redis_db)
    with captured_log() as messages:
        assert await ensure_db_version(client, reactor) == 2
    assert dump(redis_db) == V0_UPGRADED
    assert "Upgrading the database to version 1..." in messages
    assert "Upgrading the database to version 2..." in messages
    assert any(m.startswith("Database upgraded to version 2 in ") for m in messages)


def build_v1(db: redis.Redis) -> None:
    db.set(keys.DB_VERSION, "1")
    db.set(keys.LAST_MID, "4")
    db.hset(keys.MIRRORS, mapping={"1": "a", "2": "b", "3": "c", "4": "d"})
    db.hset("MIRROR_1", mapping={"ID": "1", "name": "a", "http": "http://a/", "up": "1",
                                 "excludeReason": "", "lastSync": "1700000000"})
    db.hset("MIRROR_2", mapping={"ID": "2", "name": "b", "http": "https://b/", "up": "0",
                                 "excludeReason": "Got status code 500"})
    db.hset("MIRROR_3", mapping={"ID": "3", "name": "c", "up": "1"})  # no http field
    db.hset("MIRROR_4", mapping={"ID": "4", "name": "d", "http": "d/"})
    db.sadd("MIRRORFILES_1", "/x")
    db.rpush("MIRRORLOGS_1", '{"Type":2,"MirrorID":1,"Timestamp":"2020-01-01T00:00:00Z"}')
    db.set("V2_MIRROR_9", "leftover")


@pytest_twisted.ensureDeferred
async def test_version_1_is_upgraded_to_2(client: Any, redis_db: redis.Redis) -> None:
    build_v1(redis_db)
    assert await ensure_db_version(client, reactor) == 2
    assert dump(redis_db) == {
        keys.DB_VERSION: "2",
        keys.LAST_MID: "4",
        keys.MIRRORS: {"1": "a", "2": "b", "3": "c", "4": "d"},
        "MIRROR_1": {"ID": "1", "name": "a", "http": "http://a/", "httpUp": "1",
                     "httpDownReason": "", "lastSync": "1700000000"},
        "MIRROR_2": {"ID": "2", "name": "b", "http": "https://b/", "httpsUp": "0",
                     "httpsDownReason": "Got status code 500"},
        "MIRROR_3": {"ID": "3", "name": "c", "httpUp": "1"},
        "MIRROR_4": {"ID": "4", "name": "d", "http": "d/"},
        "MIRRORFILES_1": ["/x"],
        "MIRRORLOGS_1": ['{"Type":2,"MirrorID":1,"Timestamp":"2020-01-01T00:00:00Z"}'],
    }


@pytest_twisted.ensureDeferred
async def test_the_service_upgrades_before_becoming_ready(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    build_v0(redis_db)
    service = await started_service(redis_server)
    try:
        assert await service.client().get(keys.DB_VERSION) == "2"
    finally:
        await within(service.stopService())
    assert dump(redis_db) == V0_UPGRADED


@pytest_twisted.ensureDeferred
async def test_waits_for_another_nodes_upgrade(client: Any, redis_db: redis.Redis) -> None:
    build_v1(redis_db)
    redis_db.set(keys.LOCK_UPGRADE, "12345", px=5000)
    with captured_log() as messages:
        done = ensure_db_version_deferred(client)
        await sleep(0.4)
        assert not done.called
        assert messages.count(WAITING) == 1
        redis_db.set(keys.DB_VERSION, "2")  # the other node finished
        assert await within(done, 5) == 2
    assert messages.count(WAITING) == 1
    assert redis_db.get(keys.LOCK_UPGRADE) == "12345"  # not ours: left alone
    assert redis_db.hgetall("MIRROR_1")["up"] == "1"  # we did not upgrade anything


@pytest_twisted.ensureDeferred
async def test_takes_over_when_the_other_node_died(client: Any, redis_db: redis.Redis) -> None:
    build_v1(redis_db)
    redis_db.set(keys.LOCK_UPGRADE, "12345", px=300)  # never renewed
    with captured_log() as messages:
        assert await within(ensure_db_version_deferred(client), 5) == 2
    assert messages.count(WAITING) == 1
    assert redis_db.hgetall("MIRROR_1")["httpUp"] == "1"
    assert redis_db.exists(keys.LOCK_UPGRADE) == 0


def ensure_db_version_deferred(client: Any) -> Deferred[int]:
    return Deferred.fromCoroutine(ensure_db_version(client, reactor))


@pytest_twisted.ensureDeferred
async def test_upgrade_lock_is_renewed_and_released_only_if_ours(
    client: Any, redis_db: redis.Redis
) -> None:
    clock = Clock()
    lock = await UpgradeLock.acquire(client, clock)
    assert lock is not None
    token = redis_db.get(keys.LOCK_UPGRADE)
    assert token is not None and token.isdigit()
    assert 4000 < redis_db.pttl(keys.LOCK_UPGRADE) <= 5000
    assert await UpgradeLock.acquire(client, clock) is None  # held

    redis_db.pexpire(keys.LOCK_UPGRADE, 1500)
    clock.advance(1.0)
    await eventually(lambda: redis_db.pttl(keys.LOCK_UPGRADE) > 4000, 5)

    redis_db.set(keys.LOCK_UPGRADE, "foreign", px=1500)  # ours expired, someone else's now
    with captured_log() as messages:
        clock.advance(1.0)
        await eventually(lambda: "The database upgrade lock was lost" in messages, 5)
    assert redis_db.pttl(keys.LOCK_UPGRADE) <= 1500  # not renewed: not ours
    await lock.release()
    assert redis_db.get(keys.LOCK_UPGRADE) == "foreign"

    redis_db.delete(keys.LOCK_UPGRADE)
    mine = await UpgradeLock.acquire(client, clock)
    assert mine is not None
    await mine.release()
    assert redis_db.exists(keys.LOCK_UPGRADE) == 0
    assert clock.getDelayedCalls() == []
