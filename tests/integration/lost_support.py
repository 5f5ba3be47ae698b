# mypy: disable-error-code="untyped-decorator,import-untyped"
"""What the lost-file tests share: a mirror site on loopback serving some of the files, a
mirror recorded as holding them all, a look at what Redis says it holds, the real rescan,
a health checker probing over loopback, and a daemon sending users to a lossy mirror."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import redis
from attrs import define, field
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Request

from mirrorbits.config import Config
from mirrorbits.health import HealthChecker
from mirrorbits.health.probe import make_agent
from mirrorbits.model import PROTOCOL_RSYNC, Mirror
from mirrorbits.scan.commit import scan_mirror
from mirrorbits.scan.rsync import ScanListing
from mirrorbits.scan.rsync_listing import ListedFile
from mirrorbits.store import keys
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.daemon import (
    UNANSWERED_RSYNC,
    DaemonProcess,
    add_mirrors_holding,
    base_config,
    repo_file,
)
from tests.integration.store_support import within
from tests.servers import RedisServer, StaticHTTPServer

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


def loopback_checker(store: MirrorStore, service: RedisService, clock: Clock,
                     rescan: Callable[[int], Awaitable[object]] | None = None) -> HealthChecker:
    """A health checker (default config, scheduled on ``clock``) probing over the real
    reactor, 5 s at most a check; ``rescan`` is what it asks for on a lost file."""
    return HealthChecker(lambda: Config(), service.client, store, clock,
                         agent_factory=lambda admit: make_agent(reactor, admit), timeout=5.0,
                         rescan=rescan)


@contextlib.contextmanager
def lossy_and_full(tmp_path: Path, redis_server: RedisServer, db: redis.Redis,
                   files: Sequence[str], hosts: tuple[str, str], lossy_lacks: Sequence[str] = (),
                   **config: str) -> Iterator[tuple[DaemonProcess, StaticHTTPServer,
                                                    StaticHTTPServer]]:
    """A daemon (``config`` its settings) indexing ``files`` (6 bytes each), and two enabled
    HTTP mirrors on ``hosts`` recorded as holding them all: ``lossy``, which lacks
    ``lossy_lacks``, and ``full`` (mirror IDs 1 and 2). Their rsync URL answers nothing, so
    no scan corrects the records. Everything is stopped after the block."""
    repo, lossy_root, full_root = tmp_path / "repo", tmp_path / "lossy", tmp_path / "full"
    for path in files:
        repo_file(repo, path, b"hello\n", 1687249800)
        repo_file(full_root, path, b"hello\n", 1687249800)
        if path not in lossy_lacks:
            repo_file(lossy_root, path, b"hello\n", 1687249800)
    lossy = StaticHTTPServer(lossy_root, host=hosts[0])
    full = StaticHTTPServer(full_root, host=hosts[1])
    lossy.start()
    full.start()
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address, **config))
    daemon.start()
    try:
        daemon.wait_log(f"Indexed {len(files)} files", timeout=30)
        add_mirrors_holding(daemon, db, [("lossy", lossy.url), ("full", full.url)],
                            dict.fromkeys(files, 6), rsync=UNANSWERED_RSYNC)
        yield daemon, lossy, full
    finally:
        daemon.stop()
        lossy.stop()
        full.stop()
