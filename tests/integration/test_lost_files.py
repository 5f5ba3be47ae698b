# mypy: disable-error-code="untyped-decorator,import-untyped"
"""A mirror's 404 (or wrong size) costs one file, not the whole mirror (docs/freshness.md):
health checks against a real HTTP mirror on loopback and a real redis-server; the rescan is
the real commit of a listing of what the mirror serves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import pytest_twisted
import redis
from attrs import define, field
from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Request

from mirrorbits.config import Config
from mirrorbits.health import HealthChecker
from mirrorbits.health.lost import RESCAN_AT_MOST_EVERY, LostFiles
from mirrorbits.health.probe import make_agent
from mirrorbits.model import PROTOCOL_RSYNC, Mirror
from mirrorbits.scan.commit import scan_mirror
from mirrorbits.scan.rsync import ScanListing
from mirrorbits.scan.rsync_listing import ListedFile
from mirrorbits.store import keys
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.daemon import DaemonProcess, base_config, record_mirror_files, repo_file
from tests.integration.store_support import captured_log, eventually, received, subscribe, within
from tests.integration.test_health import clock, ports, serve, state, state_changes
from tests.integration.test_repository_watch import redirect
from tests.servers import RedisServer, StaticHTTPServer

pytestmark = pytest.mark.integration
__all__ = ["clock", "ports"]  # fixtures

MTIME_NS = 1_687_249_800 * 1_000_000_000
SIZES = {"/a.bin": 100, "/b.bin": 200, "/c.bin": 300}


@define
class FileSite(Resource):
    """A mirror serving ``files`` (path -> size); anything else is a 404."""

    files: dict[str, int]
    seen: list[str] = field(factory=list)
    isLeaf = True

    def __attrs_post_init__(self) -> None:
        Resource.__init__(self)

    def render(self, request: Request) -> bytes:
        path = request.path.decode()
        self.seen.append(path)
        if path not in self.files:
            request.setResponseCode(404)
            return b""
        return b"x" * self.files[path]


async def mirror_holding_everything(store: MirrorStore, db: redis.Redis, url: str) -> Mirror:
    """The local repository holds :data:`SIZES`; an enabled mirror was scanned holding it all."""
    for path, size in SIZES.items():
        db.hset(keys.file(path), mapping={"size": str(size), "modTime": "2023-06-20 08:30:00 "
                                          "+0000 UTC"})
        db.sadd(keys.FILES, path)
    mirror = await store.add_mirror(Mirror(name="lossy", http_url=url, rsync_url="rsync://x/"))
    await store.set_enabled(mirror.id, True)
    for path, size in SIZES.items():
        db.sadd(keys.file_mirrors(path), mirror.id)
        db.hset(keys.file_info(mirror.id, path),
                mapping={"size": str(size), "modTime": "2023-06-20 08:30:00 +0000 UTC"})
        db.sadd(keys.mirror_files(mirror.id), path)
        db.sadd(keys.handled_files(mirror.id), path)
    return mirror


def holds(db: redis.Redis, mirror_id: int, path: str) -> dict[str, bool]:
    return {
        "FILEMIRRORS": bool(db.sismember(keys.file_mirrors(path), mirror_id)),
        "FILEINFO": bool(db.exists(keys.file_info(mirror_id, path))),
        "MIRRORFILES": bool(db.sismember(keys.mirror_files(mirror_id), path)),
        "HANDLEDFILES": bool(db.sismember(keys.handled_files(mirror_id), path)),
    }


HELD = dict.fromkeys(("FILEMIRRORS", "FILEINFO", "MIRRORFILES", "HANDLEDFILES"), True)
GONE = dict.fromkeys(HELD, False)


@define
class Rescans:
    """The rescan the checker asks for: the real commit of what ``site`` serves now."""

    service: RedisService
    site: FileSite
    asked: list[int] = field(factory=list)
    finished: int = 0

    async def __call__(self, mirror_id: int) -> None:
        self.asked.append(mirror_id)

        async def listing(name: str) -> ScanListing:
            return ScanListing(tuple(ListedFile(path, size, MTIME_NS)
                                     for path, size in sorted(self.site.files.items())))

        await scan_mirror(self.service.client(), reactor, mirror_id, PROTOCOL_RSYNC, listing)
        self.finished += 1


async def check_until_probed(checker: HealthChecker, clock: Clock, site: FileSite,
                             path: str) -> None:
    """Health-check rounds until ``path`` was asked for (the file is drawn at random)."""
    checker.startService()
    for _ in range(60):
        await within(checker.when_idle())
        if path in site.seen:
            return
        clock.advance(Config().check_interval * 60 + 1)
        checker.tick()
    raise AssertionError(f"{path} never checked: {site.seen}")


@pytest_twisted.ensureDeferred
async def test_a_404_drops_that_file_rescans_and_keeps_the_mirror_up(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = FileSite({"/b.bin": 200, "/c.bin": 300})  # /a.bin went missing
    mirror = await mirror_holding_everything(store, redis_db, serve(ports, site, "127.0.0.51"))
    rescans = Rescans(service, site)
    checker = HealthChecker(lambda: Config(), service.client, store, clock,
                            agent_factory=lambda admit: make_agent(reactor, admit), timeout=5.0,
                            rescan=rescans)
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
    checker = HealthChecker(lambda: Config(), service.client, store, clock,
                            agent_factory=lambda admit: make_agent(reactor, admit), timeout=5.0)
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
    checker = HealthChecker(lambda: Config(), service.client, store, clock,
                            agent_factory=lambda admit: make_agent(reactor, admit), timeout=5.0)
    with captured_log("mirrorbits.health") as said:
        await check_until_probed(checker, clock, site, "/a.bin")
    checker.stopService()
    assert state(redis_db, mirror.id)["httpUp"] == "1"
    assert holds(redis_db, mirror.id, "/a.bin") == GONE
    assert holds(redis_db, mirror.id, "/b.bin") == HELD
    assert any("/a.bin is missing there (99 bytes instead of 100)" in line for line in said)


def test_a_daemon_stops_sending_a_missing_file_to_that_mirror_only(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    for path in ("/a.txt", "/b.txt"):
        repo_file(repo, path, b"hello\n", 1687249800)
    lossy_root, full_root = tmp_path / "lossy", tmp_path / "full"
    repo_file(lossy_root, "/a.txt", b"hello\n", 1687249800)  # /b.txt went missing there
    for path in ("/a.txt", "/b.txt"):
        repo_file(full_root, path, b"hello\n", 1687249800)
    lossy = StaticHTTPServer(lossy_root, host="127.0.0.61")
    full = StaticHTTPServer(full_root, host="127.0.0.62")
    lossy.start()
    full.start()
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(
        repo, redis_server.address, CheckInterval="0", ScanInterval="1000"))
    daemon.start()
    try:
        daemon.wait_log("Indexed 2 files", timeout=30)
        for name, mirror in (("lossy", lossy), ("full", full)):
            # An rsync URL nobody answers: the scan that enabling starts fails, so only the
            # health check can find /b.txt missing (an HTTP index scan would drop it first).
            assert daemon.ctl("add", "-http", mirror.url, "-rsync", "rsync://127.0.0.1:9/pub/",
                              name).returncode == 0
        for mirror_id in (1, 2):
            record_mirror_files(redis_db, mirror_id, {"/a.txt": 6, "/b.txt": 6},
                                "2023-06-20 08:30:00 +0000 UTC")
            redis_db.sadd(keys.handled_files(mirror_id), "/a.txt", "/b.txt")
            redis_db.sadd(keys.mirror_files(mirror_id), "/a.txt", "/b.txt")
        assert daemon.ctl("enable", "lossy").returncode == 0
        assert daemon.ctl("enable", "full").returncode == 0
        daemon.wait_log("lossy: /b.txt is missing there (404)", timeout=30)
        time.sleep(0.2)  # the pub/sub message reaches the cache
        b_targets = {redirect(daemon, "/b.txt") for _ in range(30)}
        a_targets = {redirect(daemon, "/a.txt") for _ in range(60)}
        log = daemon.log()
    finally:
        daemon.stop()
        lossy.stop()
        full.stop()
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
