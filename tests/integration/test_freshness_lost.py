# mypy: disable-error-code="untyped-decorator,import-untyped"
"""A 404 seen by the freshness check is fed back (docs/freshness.md): a mirror that held a
changed file and answers 404 for it lost it; the file is forgotten there and the mirror
rescanned, as when a health check draws it. A real HTTP mirror on loopback, a real
redis-server, the real rescan commit."""

from __future__ import annotations

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import Clock, deferLater

from mirrorbits.config import Config
from mirrorbits.health.freshness import FIRST_DELAY, FreshnessChecker
from mirrorbits.model import FileInfo
from mirrorbits.store import keys
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.integration.lost_support import (
    GONE,
    HELD,
    FileSite,
    Rescans,
    holds,
    loopback_checker,
    mirror_holding_everything,
)
from tests.integration.store_support import captured_log, eventually
from tests.integration.test_health import clock, ports, serve

pytestmark = pytest.mark.integration
__all__ = ["clock", "ports"]  # fixtures

NEW_NS = 1_700_000_000 * 1_000_000_000


@pytest_twisted.ensureDeferred
async def test_a_404_for_a_changed_file_the_mirror_held_drops_it_and_rescans(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = FileSite({"/b.bin": 200, "/c.bin": 300})  # /a.bin went missing
    mirror = await mirror_holding_everything(store, redis_db, serve(ports, site, "127.0.0.92"))
    rescans = Rescans(service, site)
    health = loopback_checker(store, service, clock, rescans)
    health.running = True  # its scheduling loop (on ``clock``) is not needed here
    freshness = FreshnessChecker(Config, service.client, reactor,
                                 lost=health.file_lost)
    freshness.startService()
    try:
        with captured_log("mirrorbits.health") as said:
            # /b.bin changed too: the mirror still holds its old version (200), not lost.
            freshness.changed([FileInfo("/a.bin", 101, NEW_NS), FileInfo("/b.bin", 201, NEW_NS)])
            await eventually(lambda: rescans.finished == 1, FIRST_DELAY + 5)
        assert rescans.asked == [mirror.id]
        assert holds(redis_db, mirror.id, "/a.bin") == GONE
        assert holds(redis_db, mirror.id, "/b.bin") == HELD
        assert said.count("lossy: /a.bin is missing there (404): no longer sent to this mirror "
                          "until a scan finds it again") == 1

        # Asked again (backed off) and still missing: said once, no second rescan.
        await deferLater(reactor, FIRST_DELAY * 2 + 0.5, lambda: None)
        assert site.seen.count("/a.bin") >= 2
        assert rescans.asked == [mirror.id]
    finally:
        freshness.stopService()
        health.running = False


@pytest_twisted.ensureDeferred
async def test_a_404_for_a_new_file_is_no_loss(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = FileSite({"/b.bin": 200})
    mirror = await mirror_holding_everything(store, redis_db, serve(ports, site, "127.0.0.93"))
    lost: list[tuple[int, str]] = []
    freshness = FreshnessChecker(Config, service.client, reactor,
                                 lost=lambda m, path: lost.append((m.id, path)))
    freshness.startService()
    try:
        redis_db.sadd(keys.FILES, "/new.bin")  # no mirror held it: asked of every mirror
        freshness.changed([FileInfo("/new.bin", 5, NEW_NS)])
        await eventually(lambda: "/new.bin" in site.seen, FIRST_DELAY + 5)
        assert lost == []
        assert holds(redis_db, mirror.id, "/b.bin") == HELD
    finally:
        freshness.stopService()
