"""The request-path cache against a real Redis, invalidated by real pub/sub messages."""

from __future__ import annotations

import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.task import Clock

from mirrorbits.cache import MISSING, MirrorCache
from mirrorbits.store import keys
from mirrorbits.store.pubsub import PubSubService
from tests.integration.store_support import eventually, started_service
from tests.servers import RedisServer

MOD_TIME = "2023-06-20 08:30:00 +0000 UTC"


def seed(db: redis.Redis) -> None:
    db.hset("FILE_/a.txt", mapping={"size": "6", "modTime": MOD_TIME, "sha256": "ab"})
    db.sadd("FILEMIRRORS_/a.txt", 2, 1)
    for mirror_id, name in ((1, "one"), (2, "two")):
        db.hset(f"MIRROR_{mirror_id}", mapping={"ID": str(mirror_id), "name": name,
                                                "http": f"http://{name}/", "enabled": "1"})
        db.hset(f"FILEINFO_{mirror_id}_/a.txt", mapping={"size": "6", "modTime": MOD_TIME})


@pytest_twisted.ensureDeferred
async def test_reads_through_then_answers_from_memory(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    seed(redis_db)
    service = await started_service(redis_server)
    try:
        cache = MirrorCache(service.client, Clock())
        assert cache.cached_candidates("/a.txt") is MISSING
        info = await cache.file_info("/a.txt")
        assert info is not None and info.size == 6 and info.sha256 == "ab"
        pairs = await cache.candidates("/a.txt")
        assert [m.name for m, _ in pairs] == ["one", "two"]
        assert all(f is not None and f.size == 6 for _, f in pairs)
        redis_db.hset("MIRROR_1", "name", "renamed")
        assert [m.name for m, _ in cache.cached_candidates("/a.txt")] == ["one", "two"]
        cache.on_mirror_update("1")
        assert cache.cached_candidates("/a.txt") is MISSING
        assert [m.name for m, _ in await cache.candidates("/a.txt")] == ["renamed", "two"]
        redis_db.srem("FILEMIRRORS_/a.txt", 2)
        cache.on_mirror_file_update("2 /a.txt")
        assert [m.name for m, _ in await cache.candidates("/a.txt")] == ["renamed"]
        cache.on_mirror_file_update("garbage")
        cache.on_mirror_update("not-a-number")
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_unknown_file_is_forgotten_after_the_negative_ttl(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    service = await started_service(redis_server)
    clock = Clock()
    try:
        cache = MirrorCache(service.client, clock, negative_ttl=2.0)
        assert await cache.file_info("/new.txt") is None
        assert cache.cached_file("/new.txt") is None
        redis_db.hset("FILE_/new.txt", mapping={"size": "1", "modTime": MOD_TIME})
        clock.advance(1.0)
        assert cache.cached_file("/new.txt") is None
        clock.advance(1.5)
        assert cache.cached_file("/new.txt") is MISSING
        info = await cache.file_info("/new.txt")
        assert info is not None and info.size == 1
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_pubsub_messages_invalidate_and_reconnection_clears(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    seed(redis_db)
    service = await started_service(redis_server)
    pubsub = PubSubService(redis_server.address, "", reactor)
    cache = MirrorCache(service.client, Clock())
    pubsub.on_message(keys.CHANNEL_FILE_UPDATE, cache.on_file_update)
    pubsub.on_message(keys.CHANNEL_MIRROR_UPDATE, cache.on_mirror_update)
    pubsub.on_reconnect(cache.clear)
    pubsub.startService()
    try:
        await pubsub.whenReady()
        await cache.file_info("/a.txt")
        await cache.candidates("/a.txt")
        redis_db.publish(keys.CHANNEL_FILE_UPDATE, "/a.txt")
        await eventually(lambda: cache.cached_file("/a.txt") is MISSING)
        redis_db.publish(keys.CHANNEL_MIRROR_UPDATE, "2")
        await eventually(lambda: cache.cached_candidates("/a.txt") is MISSING)
        await cache.candidates("/a.txt")
        assert cache.cached_candidates("/a.txt") is not MISSING
        redis_db.client_kill_filter(_type="pubsub")
        await eventually(lambda: len(cache.mirrors) == 0, seconds=15)
    finally:
        await pubsub.stopService()
        await service.stopService()
