# mypy: disable-error-code="untyped-decorator,import-untyped"
"""The targeted freshness check (docs/freshness.md): after the origin publishes a new version,
the mirrors that held the file are asked for it and receive users as soon as they hold it,
without a scan."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
import redis
from attrs import define, field
from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Request

from mirrorbits.config import Config
from mirrorbits.health import freshness
from mirrorbits.health.freshness import FIRST_DELAY, FreshnessChecker
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.store import keys
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.daemon import DaemonProcess, base_config, record_mirror_files, redirect, repo_file
from tests.integration.test_health import clock, ports, serve
from tests.integration.test_repository_watch import T0, go_time, wait_until
from tests.servers import RedisServer, StaticHTTPServer, start_mirrors

pytestmark = pytest.mark.integration
__all__ = ["clock", "ports"]  # fixtures

PATH = "/pool/tool.bin"
OLD, NEW = b"o" * 100, b"n" * 200
T1_NS = (T0 + 3600) * 1_000_000_000 + 400_000_000  # a fraction of a second: HTTP shows seconds


def install(root: Path, content: bytes, mtime_ns: int | None) -> None:
    """Written aside, then renamed into place; ``mtime_ns`` kept (``rsync -t``) unless None."""
    final = root / PATH.lstrip("/")
    temporary = final.with_name(f".{final.name}.tmp")
    temporary.write_bytes(content)
    if mtime_ns is not None:
        os.utime(temporary, ns=(mtime_ns, mtime_ns))
    os.rename(temporary, final)


@define
class Site:
    """One monitoring daemon on a private redis-server (the module's other test empties the
    session's), the repository, and five HTTP mirrors, registered and enabled in this order:
    ``synced``, ``stamped`` and ``lagging`` hold :data:`PATH` and ``/keep.txt``, ``quick`` and
    ``slow`` only ``/keep.txt``. Each test changes files of its own."""

    daemon: DaemonProcess
    db: redis.Redis
    repo: Path
    servers: dict[str, StaticHTTPServer]

    def root(self, name: str) -> Path:
        return self.servers[name].root

    def log_from(self, offset: int) -> str:
        return self.daemon.log()[offset:]


MIRRORS = {"synced": "127.0.0.51", "stamped": "127.0.0.52", "lagging": "127.0.0.53",
           "quick": "127.0.0.56", "slow": "127.0.0.57"}
HOLD_PATH = ("synced", "stamped", "lagging")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp_path = tmp_path_factory.mktemp("freshness")
    redis_server = RedisServer(workdir=tmp_path / "redis")
    repo = tmp_path / "repo"
    repo_file(repo, PATH, OLD, T0)
    repo_file(repo, "/keep.txt", b"kept", T0)
    servers = {name: StaticHTTPServer(tmp_path / name, host=host)
               for name, host in MIRRORS.items()}
    for name, server in servers.items():
        repo_file(server.root, "/keep.txt", b"kept", T0)
        if name in HOLD_PATH:
            repo_file(server.root, PATH, OLD, T0)
    redis_server.start()
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(
        repo, redis_server.address, ScanInterval="1000", CheckInterval="1000"))
    db = redis_server.client()
    try:
        start_mirrors(servers.values())
        daemon.start()
        daemon.wait_log("Watching 2 directories of the repository", timeout=30)
        for number, (name, server) in enumerate(servers.items(), 1):
            assert daemon.ctl("add", "-http", server.url, name).returncode == 0
            held = {"/keep.txt": 4, PATH: len(OLD)} if name in HOLD_PATH else {"/keep.txt": 4}
            record_mirror_files(db, number, held, go_time(T0))
            assert daemon.ctl("enable", name).returncode == 0
        wait_until(lambda: redirect(daemon, PATH)[0] == 302, 10)
        yield Site(daemon, db, repo, servers)
    finally:
        daemon.stop()
        for server in servers.values():
            server.stop()
        db.close()
        redis_server.stop()


def test_a_mirror_receives_users_once_it_holds_the_new_version_without_a_scan(
        site: Site) -> None:
    daemon, db, servers = site.daemon, site.db, site.servers
    since = len(daemon.log())
    install(site.repo, NEW, T1_NS)
    wait_until(lambda: db.hget(keys.file(PATH), "size") == "200", 5)
    # no mirror holds the new version yet: once the daemon has read the new size (a moment
    # after Redis has it), it redirects nobody
    wait_until(lambda: redirect(daemon, PATH)[0] != 302, 5)
    time.sleep(1.5)  # the mirrors sync a moment later
    install(site.root("synced"), NEW, T1_NS)  # its time kept: rsync -t
    install(site.root("stamped"), NEW, None)  # the time of the copy: left to the scan
    published = time.monotonic()
    latency = wait_until(
        lambda: redirect(daemon, PATH) == (302, servers["synced"].url + PATH[1:]), 20)
    assert all(redirect(daemon, PATH)[1].startswith(servers["synced"].url)
               for _ in range(20))
    assert db.hget(keys.file_info(1, PATH), "size") == "200"
    assert db.hget(keys.file_info(2, PATH), "size") == "100"  # not recorded
    print(f"\nmirror copy -> redirect to it: {latency * 1000:.0f} ms")

    install(site.root("lagging"), NEW, T1_NS)  # later still: asked again with backoff
    wait_until(lambda: db.hget(keys.file_info(3, PATH), "size") == "200", 60)
    print(f"late copy recorded after {time.monotonic() - published:.1f} s")
    assert "Traceback" not in site.log_from(since)
    # No scan recorded them: the mirror whose copy is stamped with its own time still shows
    # the old size (an HTTP index scan would have listed the new one).
    assert db.hget(keys.file_info(2, PATH), "size") == "100"


@define
class AskedSite(Resource):
    """A mirror that records the paths asked for and holds nothing yet (every answer 404)."""

    asked: list[str] = field(factory=list)
    isLeaf = True

    def __attrs_post_init__(self) -> None:
        Resource.__init__(self)

    def render(self, request: Request) -> bytes:
        self.asked.append(request.path.decode())
        request.setResponseCode(404)
        return b""


@pytest_twisted.ensureDeferred
async def test_the_most_downloaded_files_are_asked_for_first_and_again_later(
        service: RedisService, store: MirrorStore, redis_db: redis.Redis,
        ports: list[IListeningPort], monkeypatch: pytest.MonkeyPatch) -> None:
    # one request at a time: with several, their arrival order is the connections' order
    monkeypatch.setattr(freshness, "PER_MIRROR", 1)
    site = AskedSite()
    mirror = await store.add_mirror(Mirror(name="m", http_url=serve(ports, site, "127.0.0.58")))
    await store.set_enabled(mirror.id, True)
    downloads = {"/rare.bin": 1, "/popular.bin": 50, "/middle.bin": 7}
    for path, count in downloads.items():
        redis_db.sadd(keys.file_mirrors(path), mirror.id)
        redis_db.hset(keys.STATS_FILE, path, count)
    checker = FreshnessChecker(Config, service.client, reactor)
    checker.startService()
    try:
        checker.changed([FileInfo(path, 10, T1_NS) for path in downloads])
        await deferLater(reactor, FIRST_DELAY + 0.5, lambda: None)
        # the most downloaded first; the others follow as their mirror reads come back
        assert site.asked[0] == "/popular.bin" and sorted(site.asked) == sorted(downloads)
        await deferLater(reactor, FIRST_DELAY * 2 + 0.5, lambda: None)
        assert sorted(site.asked[3:]) == sorted(downloads)  # asked again, backed off
        assert checker.recorded == 0 and redis_db.hget(keys.file_info(mirror.id, "/rare.bin"),
                                                       "size") is None
    finally:
        checker.stopService()


def test_a_new_file_goes_to_the_mirrors_that_copied_it_without_a_scan(site: Site) -> None:
    """A file no mirror held: every mirror is asked, and one that copied it gets its users."""
    daemon, db = site.daemon, site.db
    since = len(daemon.log())
    new_path = "/pool/notes #1 100%.txt"
    wait_until(lambda: redirect(daemon, "/keep.txt")[0] == 302, 10)
    repo_file(site.repo, new_path, b"new!", T0 + 60)
    wait_until(lambda: db.sismember(keys.FILES, new_path), 5)
    repo_file(site.root("quick"), new_path, b"new!", T0 + 60)  # its time kept: rsync -t
    quoted = "/pool/notes%20%231%20100%25.txt"
    latency = wait_until(lambda: redirect(daemon, quoted)[0] == 302, 20)
    assert all(redirect(daemon, quoted)[1] == site.servers["quick"].url + quoted[1:]
               for _ in range(10))
    print(f"\nnew file on a mirror -> redirect to it: {latency * 1000:.0f} ms")
    assert "Traceback" not in site.log_from(since)
