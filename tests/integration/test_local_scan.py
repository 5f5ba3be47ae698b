"""The local repository scan against a real redis-server (spec §5, §3.4, §20 items 11 and 22)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
import redis
import txredisapi
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import LogEvent, LogLevel, formatEvent, globalLogPublisher

from mirrorbits.config import Config, Hashes
from mirrorbits.scan.local import RepositoryScanner, ScanAborted, ScanSummary
from mirrorbits.scan.removals import RemovalLimit
from mirrorbits.store import keys
from mirrorbits.store.errors import DatabaseNotReady, ScanInProgress
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

REACTOR: Any = global_reactor
NS = 1_000_000_000
T0 = 1_686_990_600  # 2023-06-17 08:30:00 UTC
EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
ALL_HASHES = Hashes(sha1=True, sha256=True, md5=True)


def make_file(root: Path, relative: str, content: bytes, mtime_ns: int) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def digests(content: bytes) -> dict[str, str]:
    return {
        "sha1": hashlib.sha1(content).hexdigest(),
        "sha256": hashlib.sha256(content).hexdigest(),
        "md5": hashlib.md5(content).hexdigest(),
    }


@contextmanager
def local_zone(zone: str) -> Iterator[None]:
    """Make *zone* the process' local time zone for a while."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture
def utc() -> Iterator[None]:
    with local_zone("UTC"):
        yield


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest_twisted.async_yield_fixture
async def client(redis_server: RedisServer, redis_db: redis.Redis) -> AsyncIterator[Any]:
    connection = await txredisapi.ConnectionPool(
        redis_server.host, redis_server.port, dbid=0, poolsize=3, reconnect=False,
        convertNumbers=False,
    )
    yield connection
    await connection.disconnect()


@attrs.define
class Settings:
    """A mutable holder for the configuration the scanner reads on every scan."""

    config: Config

    def get(self) -> Config:
        return self.config

    def set(self, **changes: Any) -> None:
        self.config = attrs.evolve(self.config, **changes)


@attrs.define
class ClockedReactor:
    """Time from a Clock, threads from the real reactor."""

    clock: Clock = attrs.field(factory=Clock)

    def callLater(self, delay: float, f: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        return self.clock.callLater(delay, f, *a, **kw)

    def seconds(self) -> float:
        return self.clock.seconds()

    def getDelayedCalls(self) -> Any:
        return self.clock.getDelayedCalls()

    def getThreadPool(self) -> Any:
        return REACTOR.getThreadPool()

    def callFromThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        REACTOR.callFromThread(f, *a, **kw)


@attrs.define
class ThreadHookReactor:
    """The real reactor, running a hook in the worker thread when its n-th job returns."""

    hooks: dict[int, Callable[[], object]]
    jobs: int = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(REACTOR, name)

    def callFromThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        self.jobs += 1
        hook = self.hooks.pop(self.jobs, None)
        if hook is not None:
            hook()
        REACTOR.callFromThread(f, *a, **kw)


@attrs.define
class Published:
    """Messages of ``_mirrorbits_file_update``, read with redis-py."""

    pubsub: Any

    def drain(self) -> list[str]:
        messages: list[str] = []
        for _ in range(100_000):
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3)
            if message is None:
                return messages
            messages.append(message["data"])
        raise AssertionError("too many messages")


@pytest.fixture
def published(redis_db: redis.Redis) -> Iterator[Published]:
    pubsub = redis_db.pubsub()
    pubsub.subscribe(keys.CHANNEL_FILE_UPDATE)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    yield Published(pubsub)
    pubsub.close()


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_namespace", "").startswith("mirrorbits.scan") and (
            event.get("log_level") != LogLevel.debug
        ):
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def scanner_for(
    repo: Path, client: Any, reactor: Any = REACTOR, hashes: Hashes = ALL_HASHES, **config: Any
) -> tuple[RepositoryScanner, Settings]:
    settings = Settings(Config(repository=str(repo), hashes=hashes, **config))
    return RepositoryScanner(settings.get, lambda: client, reactor), settings


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the real reactor run until ``predicate()``; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await deferLater(REACTOR, 0.01)
    raise AssertionError("condition not met in time")


def indexed(logged: list[str]) -> int:
    """How many scans completed, from the log."""
    return sum(line.startswith("[source] Indexed") for line in logged)


async def failure_of(d: Deferred[Any]) -> BaseException:
    try:
        await d
    except BaseException as err:
        return err
    raise AssertionError("no failure")


# --- contents -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_scan_writes_files_set_hashes_and_publishes(
    repo: Path, client: Any, redis_db: redis.Redis, published: Published, logged: list[str],
    utc: None,
) -> None:
    make_file(repo, "a.txt", b"", T0 * NS + 123_456_789)
    make_file(repo, "dir/b c.bin", b"hello", T0 * NS)
    make_file(repo, ".dot", b"x", (T0 + 1) * NS + 5)
    os.symlink("a.txt", repo / "link")
    scanner, _ = scanner_for(repo, client)

    summary = await scanner.refresh()

    assert summary == ScanSummary(files=3, removed=0, hashed=3)
    assert redis_db.smembers(keys.FILES) == {"/.dot", "/a.txt", "/dir/b c.bin"}
    assert redis_db.hgetall(keys.file("/a.txt")) == {
        "size": "0",
        "modTime": "2023-06-17 08:30:00.123456789 +0000 UTC",
        "sha1": EMPTY_SHA1,
        "sha256": EMPTY_SHA256,
        "md5": EMPTY_MD5,
    }
    assert redis_db.hkeys(keys.file("/a.txt")) == ["size", "modTime", "sha1", "sha256", "md5"]
    assert redis_db.hgetall(keys.file("/dir/b c.bin")) == {
        "size": "5", "modTime": "2023-06-17 08:30:00 +0000 UTC", **digests(b"hello"),
    }
    assert redis_db.hget(keys.file("/.dot"), "modTime") == "2023-06-17 08:30:01.000000005 +0000 UTC"
    assert not redis_db.exists(keys.file("/link"), keys.FILES_TMP, keys.SOURCE_REPO_SYNC)
    assert published.drain() == ["/.dot", "/a.txt", "/dir/b c.bin"]
    assert logged[0] == "[source] Scanning the filesystem..."
    assert f"/a.txt: SHA256 {EMPTY_SHA256}" in logged
    assert logged[-2:] == ["[source] Indexing the files...", "[source] Indexed 3 files, 0 removed"]


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Europe/Paris", "2023-06-17 10:30:00.5 +0200 CEST"),
        ("America/New_York", "2023-06-17 04:30:00.5 -0400 EDT"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_mod_time_is_written_in_the_local_zone(
    zone: str, expected: str, repo: Path, client: Any, redis_db: redis.Redis
) -> None:
    with local_zone(zone):
        make_file(repo, "f", b"", T0 * NS + NS // 2)
        scanner, _ = scanner_for(repo, client)
        assert (await scanner.refresh()).hashed == 1
        assert redis_db.hget(keys.file("/f"), "modTime") == expected
        # Parsed back exactly: an unchanged file is not hashed again.
        assert (await scanner.refresh()).hashed == 0


# --- rehashing ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_only_changed_files_are_hashed_again(
    repo: Path, client: Any, redis_db: redis.Redis, published: Published, utc: None
) -> None:
    make_file(repo, "same", b"same", T0 * NS)
    make_file(repo, "touched", b"1234", T0 * NS)
    make_file(repo, "resized", b"abc", T0 * NS)
    scanner, _ = scanner_for(repo, client)
    assert (await scanner.refresh()).hashed == 3
    published.drain()

    assert await scanner.refresh() == ScanSummary(files=3, removed=0, hashed=0)
    assert published.drain() == ["/resized", "/same", "/touched"]  # every file, every run

    make_file(repo, "touched", b"5678", T0 * NS + 1)  # same size, mtime 1 ns later
    make_file(repo, "resized", b"abcd", T0 * NS)  # same mtime, other size
    assert (await scanner.refresh()).hashed == 2
    assert redis_db.hgetall(keys.file("/touched")) == {
        "size": "4", "modTime": "2023-06-17 08:30:00.000000001 +0000 UTC", **digests(b"5678"),
    }
    assert redis_db.hget(keys.file("/resized"), "sha256") == digests(b"abcd")["sha256"]

    # Unchanged size and time: stored checksums are trusted as they are.
    redis_db.hset(keys.file("/same"), "sha256", "kept-as-is")
    assert (await scanner.refresh()).hashed == 0
    assert redis_db.hget(keys.file("/same"), "sha256") == "kept-as-is"

    # A missing enabled checksum, or -rehash, forces hashing.
    redis_db.hset(keys.file("/same"), "md5", "")
    assert (await scanner.refresh()).hashed == 1
    assert redis_db.hget(keys.file("/same"), "md5") == digests(b"same")["md5"]
    assert redis_db.hget(keys.file("/same"), "sha256") == digests(b"same")["sha256"]
    assert (await scanner.refresh(rehash=True)).hashed == 3


@pytest_twisted.ensureDeferred
async def test_disabled_hashes_keep_their_old_values(
    repo: Path, client: Any, redis_db: redis.Redis, utc: None
) -> None:
    make_file(repo, "kept", b"k", T0 * NS)
    make_file(repo, "changed", b"c", T0 * NS)
    scanner, settings = scanner_for(repo, client)
    await scanner.refresh()

    settings.set(hashes=Hashes(sha1=False, sha256=True, md5=False))
    make_file(repo, "changed", b"C!", T0 * NS)
    assert (await scanner.refresh()).hashed == 1
    assert redis_db.hgetall(keys.file("/kept")) == {
        "size": "1", "modTime": "2023-06-17 08:30:00 +0000 UTC", **digests(b"k"),
    }
    assert redis_db.hgetall(keys.file("/changed")) == {
        "size": "2", "modTime": "2023-06-17 08:30:00 +0000 UTC",
        "sha1": "", "sha256": digests(b"C!")["sha256"], "md5": "",
    }

    # Enabling an algorithm again computes it where it is missing.
    settings.set(hashes=Hashes(sha1=True, sha256=True, md5=False))
    assert (await scanner.refresh()).hashed == 1
    assert redis_db.hget(keys.file("/changed"), "sha1") == digests(b"C!")["sha1"]

    # With every checksum disabled nothing is read; a new file gets empty checksums.
    settings.set(hashes=Hashes(sha1=False, sha256=False, md5=False))
    make_file(repo, "new", b"n", T0 * NS)
    assert await scanner.refresh() == ScanSummary(files=3, removed=0, hashed=0)
    assert redis_db.hmget(keys.file("/new"), ["size", "sha1", "sha256", "md5"]) == [
        "1", "", "", "",
    ]
    assert redis_db.hget(keys.file("/kept"), "md5") == digests(b"k")["md5"]


@pytest_twisted.ensureDeferred
async def test_unreadable_file_is_indexed_without_checksums(
    repo: Path, client: Any, redis_db: redis.Redis, logged: list[str], utc: None
) -> None:
    make_file(repo, "ok", b"ok", T0 * NS)
    make_file(repo, "vanishing", b"v", T0 * NS)
    # The file disappears right after the walk, before it is hashed: a read error.
    hooked = ThreadHookReactor({1: (repo / "vanishing").unlink})  # job 1 is the walk
    scanner, _ = scanner_for(repo, client, reactor=hooked)

    assert await scanner.refresh() == ScanSummary(files=2, removed=0, hashed=1)
    assert redis_db.hgetall(keys.file("/vanishing")) == {
        "size": "1", "modTime": "2023-06-17 08:30:00 +0000 UTC", "sha1": "", "sha256": "",
        "md5": "",
    }
    assert redis_db.hget(keys.file("/ok"), "sha256") == digests(b"ok")["sha256"]
    assert "[source] Cannot hash /vanishing: No such file or directory" in logged


# --- removals -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_removed_files_are_deleted_and_published(
    repo: Path, client: Any, redis_db: redis.Redis, published: Published, logged: list[str]
) -> None:
    for name in ("a", "b", "c"):
        make_file(repo, name, name.encode(), T0 * NS)
    scanner, _ = scanner_for(repo, client)
    await scanner.refresh()
    published.drain()
    (repo / "b").unlink()

    assert await scanner.refresh() == ScanSummary(files=2, removed=1, hashed=0)
    assert redis_db.smembers(keys.FILES) == {"/a", "/c"}
    assert not redis_db.exists(keys.file("/b"))
    assert redis_db.exists(keys.file("/a"), keys.file("/c")) == 2
    assert published.drain() == ["/a", "/c", "/b"]
    assert logged[-1] == "[source] Indexed 2 files, 1 removed"


@pytest_twisted.ensureDeferred
async def test_empty_repository_empties_files(
    repo: Path, client: Any, redis_db: redis.Redis, published: Published
) -> None:
    make_file(repo, "a", b"a", T0 * NS)
    make_file(repo, "d/b", b"b", T0 * NS)
    scanner, _ = scanner_for(repo, client)
    await scanner.refresh()
    published.drain()
    (repo / "a").unlink()
    (repo / "d" / "b").unlink()

    # The reference left FILES stale here (its RENAME of a missing FILES_TMP failed).
    assert await scanner.refresh() == ScanSummary(files=0, removed=2, hashed=0)
    assert not redis_db.exists(keys.FILES, keys.FILES_TMP, keys.file("/a"), keys.file("/d/b"))
    assert published.drain() == ["/a", "/d/b"]
    assert await scanner.refresh() == ScanSummary(files=0, removed=0, hashed=0)
    assert redis_db.keys("*") == []


@pytest_twisted.ensureDeferred
async def test_a_repository_found_empty_by_the_service_keeps_the_index(
    repo: Path, client: Any, redis_db: redis.Redis, logged: list[str]
) -> None:
    """A repository not mounted, or not synced yet on a new node of a cluster, must not
    empty the index every node shares; an operator's refresh still can."""
    make_file(repo, "a", b"a", T0 * NS)
    make_file(repo, "d/b", b"b", T0 * NS)
    fake = ClockedReactor()
    settings = Settings(Config(repository=str(repo), repository_scan_interval=1))
    scanner = RepositoryScanner(settings.get, lambda: client, fake)
    scanner.startService()
    fake.clock.advance(0)
    await wait_until(lambda: indexed(logged) == 1)
    (repo / "a").unlink()
    (repo / "d" / "b").unlink()

    for _ in range(2):  # said once, however many periodic scans find it so
        fake.clock.advance(60)
        await wait_until(lambda: not scanner.busy)
    refused = (f"[source] Repository scan failed: {repo} holds no file while 2 are indexed: "
               "nothing removed (not mounted or not synced yet?); it is scanned again at the "
               "next interval, and 'mirrorbits-ctl refresh' indexes it as it is")
    assert [line for line in logged if "failed" in line] == [refused]
    assert redis_db.smembers(keys.FILES) == {"/a", "/d/b"}

    assert await scanner.refresh() == ScanSummary(files=0, removed=2, hashed=0)
    assert not redis_db.exists(keys.FILES)
    fake.clock.advance(60)  # nothing indexed any more: an empty repository is no news
    await wait_until(lambda: not scanner.busy)
    assert indexed(logged) == 3
    await scanner.stopService()


async def started_service(repo: Path, client: Any, logged: list[str],
                          **config: Any) -> tuple[RepositoryScanner, ClockedReactor]:
    """A scanner service scanning every minute (of a fake clock), its first scan done."""
    fake = ClockedReactor()
    settings = Settings(Config(repository=str(repo), repository_scan_interval=1, **config))
    scanner = RepositoryScanner(settings.get, lambda: client, fake)
    scanner.startService()
    fake.clock.advance(0)
    await wait_until(lambda: indexed(logged) == 1)
    return scanner, fake


async def next_periodic_scan(scanner: RepositoryScanner, fake: ClockedReactor) -> None:
    fake.clock.advance(60)
    await wait_until(lambda: not scanner.busy)


def kept_lines(logged: list[str]) -> list[str]:
    return [line for line in logged if line.startswith("[source] Kept")]


@pytest_twisted.ensureDeferred
async def test_a_partly_present_repository_keeps_the_missing_files_indexed(
    repo: Path, client: Any, redis_db: redis.Redis, logged: list[str]
) -> None:
    """A sync still running, a mount missing: the service's scans do not take a quarter of
    the shared index away; new and changed files are indexed all the same."""
    for number in range(20):
        make_file(repo, f"pool/{number:02d}", b"x", T0 * NS)
    scanner, fake = await started_service(repo, client, logged)
    for number in range(5):
        (repo / "pool" / f"{number:02d}").unlink()
    make_file(repo, "pool/new", b"new", T0 * NS)
    make_file(repo, "pool/19", b"changed", (T0 + 60) * NS)

    for _ in range(2):  # said once, however many periodic scans find it so
        await next_periodic_scan(scanner, fake)
    assert kept_lines(logged) == [
        "[source] Kept 5 indexed files the repository lacks (more than RepositoryScanMaxRemove "
        "(10%) of the 20 indexed files: not mounted or not synced whole?); looked for again at "
        "the next scan, 'mirrorbits-ctl refresh' removes them"]
    assert logged[-1] == "[source] Indexed 16 files, 0 removed"
    assert len(redis_db.smembers(keys.FILES)) == 21
    assert redis_db.hget(keys.file("/pool/00"), "size") == "1"
    assert redis_db.hget(keys.file("/pool/new"), "size") == "3"
    assert redis_db.hget(keys.file("/pool/19"), "size") == "7"

    # The operator's word: everything the repository lacks goes.
    summary = await scanner.refresh()
    assert (summary.removed, summary.kept) == (5, 0)
    assert len(redis_db.smembers(keys.FILES)) == 16
    assert not redis_db.exists(keys.file("/pool/00"))
    await scanner.stopService()


@pytest_twisted.ensureDeferred
async def test_a_few_removals_apply_and_a_count_can_bound_them(
    repo: Path, client: Any, redis_db: redis.Redis, logged: list[str]
) -> None:
    for number in range(20):
        make_file(repo, f"{number:02d}", b"x", T0 * NS)
    scanner, fake = await started_service(repo, client, logged)
    (repo / "00").unlink()
    (repo / "01").unlink()  # 2 of 20: within 10%
    await next_periodic_scan(scanner, fake)
    assert logged[-1] == "[source] Indexed 18 files, 2 removed"
    assert kept_lines(logged) == []
    await scanner.stopService()
    logged.clear()

    scanner, fake = await started_service(
        repo, client, logged, repository_scan_max_remove=RemovalLimit(count=0))
    (repo / "02").unlink()
    await next_periodic_scan(scanner, fake)
    assert redis_db.sismember(keys.FILES, "/02")
    assert "more than RepositoryScanMaxRemove (0) of the 18 indexed files" in kept_lines(
        logged)[0]
    await scanner.stopService()


@pytest_twisted.ensureDeferred
async def test_files_below_a_directory_found_empty_stay_indexed(
    repo: Path, client: Any, redis_db: redis.Redis, logged: list[str]
) -> None:
    """A mount point not mounted is an empty directory: its files stay indexed, however few;
    the other removals apply."""
    for number in range(30):
        make_file(repo, f"pool/{number:02d}", b"x", T0 * NS)
    make_file(repo, "isos/big.iso", b"iso", T0 * NS)
    make_file(repo, "isos/sub/small.iso", b"iso", T0 * NS)
    scanner, fake = await started_service(repo, client, logged)
    (repo / "isos" / "big.iso").unlink()
    (repo / "isos" / "sub" / "small.iso").unlink()
    (repo / "isos" / "sub").rmdir()  # the mount point itself stays, empty
    (repo / "pool" / "00").unlink()

    await next_periodic_scan(scanner, fake)
    assert kept_lines(logged) == [
        "[source] Kept 2 indexed files the repository lacks (/isos is empty (a mount point not "
        "mounted?)); looked for again at the next scan, 'mirrorbits-ctl refresh' removes them"]
    assert logged[-2:-1] == ["[source] Indexed 29 files, 1 removed"]
    assert {"/isos/big.iso", "/isos/sub/small.iso"} <= redis_db.smembers(keys.FILES)
    assert not redis_db.sismember(keys.FILES, "/pool/00")
    assert redis_db.hget(keys.file("/isos/big.iso"), "size") == "3"

    (repo / "isos").rmdir()  # deleted on purpose: gone with its directory
    await next_periodic_scan(scanner, fake)
    assert logged[-1] == "[source] Indexed 29 files, 2 removed"
    assert not redis_db.exists(keys.file("/isos/big.iso"))
    await scanner.stopService()


# --- errors and locking -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_missing_repository(tmp_path: Path, client: Any, redis_db: redis.Redis) -> None:
    missing = tmp_path / "nowhere"
    scanner, _ = scanner_for(missing, client)
    err = await failure_of(Deferred.fromCoroutine(scanner.refresh()))
    assert str(err) == f"{missing}: No such file or directory"
    assert redis_db.keys("*") == []


@pytest_twisted.ensureDeferred
async def test_database_not_ready(repo: Path) -> None:
    def not_ready() -> Any:
        raise DatabaseNotReady("database not ready")

    settings = Settings(Config(repository=str(repo)))
    scanner = RepositoryScanner(settings.get, not_ready, REACTOR)
    err = await failure_of(Deferred.fromCoroutine(scanner.refresh()))
    assert isinstance(err, DatabaseNotReady)


@pytest_twisted.ensureDeferred
async def test_lock_held_elsewhere_gives_up_after_ten_tries(
    repo: Path, client: Any, redis_db: redis.Redis
) -> None:
    make_file(repo, "a", b"a", T0 * NS)
    redis_db.set(keys.SOURCE_REPO_SYNC, "1", ex=600)
    fake = ClockedReactor()
    scanner, _ = scanner_for(repo, client, reactor=fake)
    scan = Deferred.fromCoroutine(scanner.refresh())

    waited = 0
    for _ in range(20):
        await wait_until(lambda: scan.called or bool(fake.clock.getDelayedCalls()))
        if scan.called:
            break
        fake.clock.advance(1)
        waited += 1
    err = await failure_of(scan)

    assert isinstance(err, ScanInProgress)
    assert str(err) == "scan already in progress"
    assert waited == 9  # ten SET NX attempts, one second apart
    assert redis_db.get(keys.SOURCE_REPO_SYNC) == "1"
    assert not redis_db.exists(keys.FILES, keys.FILES_TMP, keys.file("/a"))

    redis_db.delete(keys.SOURCE_REPO_SYNC)
    assert (await scanner.refresh()).files == 1


@pytest_twisted.ensureDeferred
async def test_stop_while_waiting_for_the_lock_aborts_without_commit(
    repo: Path, client: Any, redis_db: redis.Redis
) -> None:
    make_file(repo, "a", b"a", T0 * NS)
    redis_db.set(keys.SOURCE_REPO_SYNC, "1", ex=600)
    fake = ClockedReactor()
    scanner, _ = scanner_for(repo, client, reactor=fake)
    scan = Deferred.fromCoroutine(scanner.refresh())
    await wait_until(lambda: bool(fake.clock.getDelayedCalls()))

    await scanner.stopService()

    err = await failure_of(scan)
    assert isinstance(err, ScanAborted)
    assert str(err) == "scan aborted"
    assert not redis_db.exists(keys.FILES, keys.FILES_TMP, keys.file("/a"))
    # A stopped scanner refuses new scans.
    err = await failure_of(Deferred.fromCoroutine(scanner.refresh()))
    assert isinstance(err, ScanAborted)


@pytest_twisted.ensureDeferred
async def test_stop_during_hashing_aborts_quickly(
    repo: Path, client: Any, redis_db: redis.Redis
) -> None:
    with open(repo / "huge.iso", "wb") as stream:
        stream.truncate(4 * 1024**3)  # sparse: hashing it takes many seconds
    scanner, _ = scanner_for(repo, client)
    scan = Deferred.fromCoroutine(scanner.refresh())
    await deferLater(REACTOR, 0.3)

    started = time.monotonic()
    await scanner.stopService()
    assert time.monotonic() - started < 3

    assert isinstance(await failure_of(scan), ScanAborted)
    assert redis_db.keys("*") == []


# --- the service --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_concurrent_refreshes_are_serialized_and_shared(
    repo: Path, client: Any, redis_db: redis.Redis, logged: list[str]
) -> None:
    make_file(repo, "a", b"a", T0 * NS)
    scanner, _ = scanner_for(repo, client)
    first = Deferred.fromCoroutine(scanner.refresh())
    second = Deferred.fromCoroutine(scanner.refresh())
    third = Deferred.fromCoroutine(scanner.refresh(rehash=True))

    one, two, three = await first, await second, await third

    assert one == ScanSummary(files=1, removed=0, hashed=1)
    assert two is three  # both arrived during the first scan: one more scan serves them
    assert two == ScanSummary(files=1, removed=0, hashed=1)  # rehash requested by the third
    assert logged.count("[source] Scanning the filesystem...") == 2


@pytest_twisted.ensureDeferred
async def test_service_retries_first_scan_then_scans_periodically(
    repo: Path, client: Any, redis_db: redis.Redis, logged: list[str]
) -> None:
    make_file(repo, "first", b"1", T0 * NS)
    fake = ClockedReactor()
    failures = [2]

    def get_client() -> Any:
        if failures[0]:
            failures[0] -= 1
            raise DatabaseNotReady("database not ready")
        return client

    settings = Settings(Config(repository=str(repo), repository_scan_interval=5))
    scanner = RepositoryScanner(settings.get, get_client, fake)
    scanner.startService()
    fake.clock.advance(0)
    assert not redis_db.exists(keys.FILES)
    # Before the first scan, waiting for the database is no error (the start is usually
    # faster than the Redis connection); it is retried every second.
    assert logged == []
    fake.clock.advance(1)
    assert logged == []
    fake.clock.advance(1)
    await wait_until(lambda: indexed(logged) == 1)
    assert redis_db.smembers(keys.FILES) == {"/first"}

    make_file(repo, "second", b"2", T0 * NS)
    fake.clock.advance(299)
    await deferLater(REACTOR, 0.2)
    assert indexed(logged) == 1
    fake.clock.advance(1)
    await wait_until(lambda: indexed(logged) == 2)
    assert redis_db.smembers(keys.FILES) == {"/first", "/second"}

    # A reload disabling the periodic scan stops the timer.
    settings.set(repository_scan_interval=0)
    scanner.config_changed()
    assert fake.clock.getDelayedCalls() == []
    settings.set(repository_scan_interval=1)
    scanner.config_changed()
    make_file(repo, "third", b"3", T0 * NS)
    fake.clock.advance(60)
    await wait_until(lambda: indexed(logged) == 3)
    assert redis_db.scard(keys.FILES) == 3

    # Later, a database that went away fails the periodic scans: an error, logged once.
    failures[0] = 2
    fake.clock.advance(60)
    fake.clock.advance(60)
    assert [line for line in logged if "failed" in line] == [
        "[source] Repository scan failed: database not ready"]

    await scanner.stopService()
    assert fake.clock.getDelayedCalls() == []


# --- size -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_thousands_of_files_commit_in_bounded_batches(
    repo: Path, client: Any, redis_db: redis.Redis
) -> None:
    for d in range(5):
        directory = repo / f"d{d:02d}"
        directory.mkdir()
        for f in range(1000):
            (directory / f"f{f:04d}").touch()
    redis_db.sadd(keys.FILES, "/gone")
    redis_db.hset(keys.file("/gone"), "size", "1")
    scanner, _ = scanner_for(repo, client, hashes=Hashes())
    redis_db.config_resetstat()

    started = time.monotonic()
    summary = await scanner.refresh()
    elapsed = time.monotonic() - started

    assert summary == ScanSummary(files=5_000, removed=1, hashed=5_000)
    assert redis_db.scard(keys.FILES) == 5_000
    assert redis_db.hget(keys.file("/d04/f0999"), "sha256") == EMPTY_SHA256
    assert not redis_db.exists(keys.file("/gone"))
    stats = redis_db.info("commandstats")
    assert stats["cmdstat_hmset"]["calls"] == 5_000
    # 500 files (1,000 commands) per MULTI/EXEC, plus one for the removed file.
    assert stats["cmdstat_exec"]["calls"] == 11
    assert stats["cmdstat_rename"]["calls"] == 1
    assert elapsed < 120


@pytest_twisted.ensureDeferred
async def test_unreadable_stored_record_fails_the_scan(
    repo: Path, client: Any, redis_db: redis.Redis
) -> None:
    make_file(repo, "a", b"a", T0 * NS)
    redis_db.sadd(keys.FILES, "/old")
    redis_db.set(keys.file("/a"), "not a hash")
    scanner, _ = scanner_for(repo, client)

    err = await failure_of(Deferred.fromCoroutine(scanner.refresh()))

    assert str(err).startswith("WRONGTYPE")
    assert redis_db.smembers(keys.FILES) == {"/old"}


@pytest_twisted.ensureDeferred
async def test_a_failing_batch_fails_the_scan_and_keeps_files(
    repo: Path, client: Any, redis_db: redis.Redis
) -> None:
    make_file(repo, "a", b"a", T0 * NS)
    make_file(repo, "b", b"b", T0 * NS)
    redis_db.sadd(keys.FILES, "/old")
    # After the records were read and the last file hashed (job 3), /b becomes a string.
    hooked = ThreadHookReactor({3: lambda: redis_db.set(keys.file("/b"), "not a hash")})
    scanner, _ = scanner_for(repo, client, reactor=hooked)

    err = await failure_of(Deferred.fromCoroutine(scanner.refresh()))

    assert str(err).startswith("WRONGTYPE")
    assert hooked.jobs == 3
    assert redis_db.smembers(keys.FILES) == {"/old"}
    assert not redis_db.exists(keys.SOURCE_REPO_SYNC)
    redis_db.delete(keys.file("/b"))
    # Writes are not rolled back: /a was stored by the failed batch and is not hashed again.
    assert await scanner.refresh() == ScanSummary(files=2, removed=1, hashed=1)
    assert redis_db.smembers(keys.FILES) == {"/a", "/b"}
