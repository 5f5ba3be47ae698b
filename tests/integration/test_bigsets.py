"""Big-set helpers against a real Redis: same results as SDIFF/SINTERSTORE/RENAME."""

from __future__ import annotations

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
