# mypy: disable-error-code="untyped-decorator,import-untyped"
"""A mirror's 404 (or wrong size) costs one file, not the whole mirror (docs/freshness.md):
health checks against a real HTTP mirror on loopback and a real redis-server; the rescan is
the real commit of a listing of what the mirror serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
import redis
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import Clock

from mirrorbits.health.lost import RESCAN_AT_MOST_EVERY, LostFiles
from mirrorbits.store import keys
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.daemon import (
    redirect,
    wait_until_not_a_candidate,
)
from tests.integration.lost_support import (
    GONE,
    HELD,
    SIZES,
    FileSite,
    Rescans,
    check_until_probed,
    holds,
    loopback_checker,
    lossy_and_full,
    mirror_holding_everything,
)
from tests.integration.store_support import captured_log, eventually, received, subscribe, within
from tests.integration.test_health import clock, ports, serve, state, state_changes
from tests.servers import RedisServer

pytestmark = pytest.mark.integration
__all__ = ["clock", "ports"]  # fixtures


@pytest_twisted.ensureDeferred
async def test_a_404_drops_that_file_rescans_and_keeps_the_mirror_up(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = FileSite({"/b.bin": 200, "/c.bin": 300})  # /a.bin went missing
    mirror = await mirror_holding_everything(store, redis_db, serve(ports, site, "127.0.0.51"))
    rescans = Rescans(service, site)
    checker = loopback_checker(store, service, clock, rescans)
    messages = subscribe(redis_db, keys.CHANNEL_MIRROR_FILE_UPDATE)
    try:
        with captured_log("mirrorbits.health") as said:
            await check_until_probed(checker, clock, site, "/a.bin")
        checker.stopService()
        assert state(redis_db, mirror.id)["httpUp"] == "1"
        assert [c for c in state_changes(redis_db, mirror.id) if not c["Up"]] == []
        assert holds(redis_db, mirror.id, "/a.bin") == GONE
        assert holds(redis_db, mirror.id, "/b.bin") == holds(redis_db, mirror.id, "/c.bin") == HELD
        assert (keys.CHANNEL_MIRROR_FILE_UPDATE, f"{mirror.id} /a.bin") in received(messages)
        assert said.count("lossy: /a.bin is missing there (404): no longer sent to this mirror "
                          "until a scan finds it again") == 1
        assert rescans.asked == [mirror.id]

        # The mirror gets the file back: the next scan records it again.
        await eventually(lambda: rescans.finished == 1)
        assert holds(redis_db, mirror.id, "/a.bin") == GONE  # the rescan did not find it
        site.files["/a.bin"] = 100
        await rescans(mirror.id)
        assert holds(redis_db, mirror.id, "/a.bin") == HELD
    finally:
        messages.close()


@pytest_twisted.ensureDeferred
async def test_a_mirror_missing_every_file_tried_is_down(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = FileSite({})
    mirror = await mirror_holding_everything(store, redis_db, serve(ports, site, "127.0.0.52"))
    checker = loopback_checker(store, service, clock)
    checker.startService()
    await within(checker.when_idle())
    checker.stopService()
    assert sorted(site.seen) == sorted(SIZES)  # three different files, each once
    assert state(redis_db, mirror.id)["httpUp"] == "0"
    assert state(redis_db, mirror.id)["httpDownReason"].startswith("File not found /")
    assert all(holds(redis_db, mirror.id, path) == GONE for path in SIZES)


@pytest_twisted.ensureDeferred
async def test_a_wrong_size_drops_that_file_and_keeps_the_mirror_up(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = FileSite({"/a.bin": 99, "/b.bin": 200, "/c.bin": 300})  # /a.bin is truncated
    mirror = await mirror_holding_everything(store, redis_db, serve(ports, site, "127.0.0.53"))
    checker = loopback_checker(store, service, clock)
    with captured_log("mirrorbits.health") as said:
        await check_until_probed(checker, clock, site, "/a.bin")
    checker.stopService()
    assert state(redis_db, mirror.id)["httpUp"] == "1"
    assert holds(redis_db, mirror.id, "/a.bin") == GONE
    assert holds(redis_db, mirror.id, "/b.bin") == HELD
    assert any("/a.bin differs there (99 bytes instead of 100)" in line for line in said)


def test_a_daemon_stops_sending_a_missing_file_to_that_mirror_only(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    # /b.txt went missing on "lossy". The scan that enabling starts fails (no rsync answers),
    # so only the health check can find it missing (an HTTP index scan would drop it first).
    with lossy_and_full(tmp_path, redis_server, redis_db, ("/a.txt", "/b.txt"),
                        ("127.0.0.61", "127.0.0.62"), lossy_lacks=["/b.txt"],
                        CheckInterval="0", ScanInterval="1000") as (daemon, lossy, full):
        daemon.wait_log("lossy: /b.txt is missing there (404)", timeout=30)
        wait_until_not_a_candidate(daemon, "/b.txt", "lossy")
        b_targets = {redirect(daemon, "/b.txt") for _ in range(30)}
        a_targets = {redirect(daemon, "/a.txt") for _ in range(60)}
        log = daemon.log()
    assert b_targets == {(302, full.url + "b.txt")}
    assert (302, lossy.url + "a.txt") in a_targets  # the mirror itself is still trusted
    assert redis_db.hget(keys.mirror(1), "httpUp") == "1"
    assert "Traceback" not in log


@pytest_twisted.ensureDeferred
async def test_a_mirror_is_rescanned_for_lost_files_at_most_every_ten_minutes(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
) -> None:
    mirror = await mirror_holding_everything(store, redis_db, "http://127.0.0.54/")
    asked: list[int] = []

    async def rescan(mirror_id: int) -> None:
        asked.append(mirror_id)

    lost = LostFiles(rescan, clock)
    await lost.forget(service.client(), mirror, "/a.bin", "404")
    await lost.forget(service.client(), mirror, "/b.bin", "404")
    clock.advance(RESCAN_AT_MOST_EVERY - 1)
    await lost.forget(service.client(), mirror, "/c.bin", "404")
    assert asked == [mirror.id]
    assert all(holds(redis_db, mirror.id, path) == GONE for path in SIZES)  # each one dropped
    clock.advance(1)
    await lost.forget(service.client(), mirror, "/a.bin", "404")
    assert asked == [mirror.id, mirror.id]
