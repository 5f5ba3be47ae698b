"""Big-set helpers against a real Redis: same results as SDIFF/SINTERSTORE/RENAME."""

from __future__ import annotations

from typing import Any

import pytest_twisted
import redis

from mirrorbits.store.bigsets import contained, fill, members, replace
from tests.integration.store_support import started_service
from tests.servers import RedisServer


@pytest_twisted.ensureDeferred
async def test_set_operations_in_small_steps(redis_server: RedisServer,
                                             redis_db: redis.Redis) -> None:
    redis_db.sadd("A", *[f"/f{i}" for i in range(2500)])
    redis_db.sadd("FILES", *[f"/f{i}" for i in range(0, 2500, 2)])
    service = await started_service(redis_server)
    try:
        client = service.client()
        assert await members(client, "A", page=100) == redis_db.smembers("A")
        wanted = sorted(redis_db.smembers("A"))
        inter = await contained(client, "FILES", wanted, batch=300)
        assert set(inter) == redis_db.sinter("FILES", "A")
        await fill(client, "B", inter, batch=128)
        assert redis_db.smembers("B") == redis_db.sinter("FILES", "A")
        await replace(client, "A", "B", "DISCARDED_A")
        assert redis_db.smembers("A") == redis_db.smembers("FILES")
        assert not redis_db.exists("B") and not redis_db.exists("DISCARDED_A")
        await replace(client, "A", "MISSING", "DISCARDED_A")  # empty source: target emptied
        assert not redis_db.exists("A") and not redis_db.exists("DISCARDED_A")
        await replace(client, "C", "FILES", "DISCARDED_C")  # no old value
        assert redis_db.scard("C") == 1250
    finally:
        await service.stopService()


class _DeletesAfterFirstReply:
    """A client whose first answer is followed by another writer deleting ``key`` (the last
    file of a mirror dropped as lost while its scan commits)."""

    def __init__(self, client: Any, db: redis.Redis, key: str) -> None:
        self._client = client
        self._db = db
        self._key = key
        self._armed = True

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await method(*args, **kwargs)
            if self._armed:
                self._armed = False
                self._db.delete(self._key)
            return result

        return call


@pytest_twisted.ensureDeferred
async def test_a_target_deleted_by_another_writer_meanwhile_is_no_error(
        redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """The checks and the moves of ``replace`` are one step: a target another writer deletes
    between two of its commands is absent, not ``ERR no such key`` (a scan's commit used to
    fail so, and the scheduler took it for Redis being unavailable)."""
    redis_db.sadd("HANDLED", "/a.txt")
    redis_db.sadd("HANDLED_TMP", "/b.txt")
    service = await started_service(redis_server)
    try:
        racing = _DeletesAfterFirstReply(service.client(), redis_db, "HANDLED")
        await replace(racing, "HANDLED", "HANDLED_TMP", "DISCARDED_HANDLED")
        assert not redis_db.exists("HANDLED_TMP") and not redis_db.exists("DISCARDED_HANDLED")
        assert redis_db.smembers("HANDLED") in ({"/b.txt"}, set())
    finally:
        await service.stopService()
