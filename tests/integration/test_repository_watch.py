# mypy: disable-error-code="untyped-decorator,import-untyped"
"""The repository watcher (docs/freshness.md) on real files, a real redis-server, real
daemons and real HTTP mirrors on loopback: changes are published within a second."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import redis
import txredisapi
from twisted.internet import reactor as global_reactor
from twisted.internet.task import deferLater

from mirrorbits.config import Config, Hashes
from mirrorbits.scan.local import RepositoryScanner
from mirrorbits.scan.watch import MAX_PENDING, RepositoryWatcher, inotify_available
from mirrorbits.store import keys
from tests.daemon import DaemonProcess, base_config, record_mirror_files, redirect, repo_file
from tests.integration.store_support import captured_log
from tests.servers import RedisServer, StaticHTTPServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not inotify_available(), reason="inotify is not available"),
]

REACTOR: Any = global_reactor
T0 = 1_687_249_800  # 2023-06-20 08:30:00 UTC
T1 = T0 + 3600
PATH = "/pool/tool.bin"


def go_time(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(seconds))


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.01) -> float:
    """Seconds until *condition* held; fails after *timeout*."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


def publish_atomically(root: Path, relative: str, content: bytes, mtime: int) -> None:
    """Write a temporary file, date it, then rename it into place (as rsync does)."""
    final = root / relative.lstrip("/")
    temporary = final.parent / f".{final.name}.tmp"
    temporary.write_bytes(content)
    os.utime(temporary, (mtime, mtime))
    os.rename(temporary, final)


def test_a_rewritten_file_is_sent_only_to_updated_mirrors_within_a_second(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    old, new = b"o" * 100, b"n" * 200
    repo = tmp_path / "repo"
    repo_file(repo, PATH, old, T0)
    repo_file(repo, "/keep.txt", b"kept", T0)  # an empty repository answers 503
    fresh_root, stale_root = tmp_path / "fresh", tmp_path / "stale"
    repo_file(fresh_root, PATH, new, T1)
    repo_file(stale_root, PATH, old, T0)
    fresh = StaticHTTPServer(fresh_root, host="127.0.0.41")
    stale = StaticHTTPServer(stale_root, host="127.0.0.42")
    fresh.start()
    stale.start()
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(
        repo, redis_server.address, ScanInterval="1000", CheckInterval="1000"))
    daemon.start()
    try:
        daemon.wait_log("Watching 2 directories of the repository", timeout=30)
        assert daemon.ctl("add", "-http", fresh.url, "fresh").returncode == 0
        assert daemon.ctl("add", "-http", stale.url, "stale").returncode == 0
        # Both scanned: the fresh mirror already holds the new file, the stale one the old.
        record_mirror_files(redis_db, 1, {PATH: len(new)}, go_time(T1))
        record_mirror_files(redis_db, 2, {PATH: len(old)}, go_time(T0))
        assert daemon.ctl("enable", "fresh").returncode == 0
        assert daemon.ctl("enable", "stale").returncode == 0
        wait_until(lambda: redirect(daemon, PATH) == (302, stale.url + PATH[1:]), 10)

        publish_atomically(repo, PATH, new, T1)
        latency = wait_until(lambda: redirect(daemon, PATH) == (302, fresh.url + PATH[1:]), 1.0)
        assert all(redirect(daemon, PATH)[1].startswith(fresh.url) for _ in range(20))
        assert redis_db.hget(keys.file(PATH), "size") == "200"
        print(f"\nrename -> redirect to the updated mirror: {latency * 1000:.0f} ms")

        (repo / PATH.lstrip("/")).unlink()
        # Gone from the repository: a 404 (the published removal makes the web layer look at
        # the file system again at once).
        latency = wait_until(lambda: redirect(daemon, PATH)[0] == 404, 1.0)
        assert not redis_db.sismember(keys.FILES, PATH)
        print(f"delete -> no redirect: {latency * 1000:.0f} ms")
        log = daemon.log()
    finally:
        daemon.stop()
        fresh.stop()
        stale.stop()
    assert "Traceback" not in log
    assert "Full scan" not in log  # each change was published alone


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_request_right_after_a_change_waits_for_its_publication(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis, workers: str) -> None:
    """Served by the watching process (``Workers: 1``), a request sent right after the rename
    is held until the change is published: never a redirect to the old copy. HTTP workers
    (``Workers: 2``) are told what the watch saw by the daemon, over their command pipe: a
    request that reaches a worker a few milliseconds after the rename is held the same way
    (one sent at the same instant may still beat the daemon's message)."""
    told = 0.0 if workers == "1" else 0.02
    old, new = b"o" * 100, b"n" * 200
    repo = tmp_path / "repo"
    repo_file(repo, PATH, old, T0)
    repo_file(repo, "/keep.txt", b"kept", T0)
    new_root, old_root = tmp_path / "new", tmp_path / "old"
    repo_file(new_root, PATH, new, T1)
    repo_file(old_root, PATH, old, T0)
    holds_new = StaticHTTPServer(new_root, host="127.0.0.43")
    holds_old = StaticHTTPServer(old_root, host="127.0.0.44")
    holds_new.start()
    holds_old.start()
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(
        repo, redis_server.address, ScanInterval="1000", CheckInterval="1000", Workers=workers))
    daemon.start()
    try:
        daemon.wait_log("Watching 2 directories of the repository", timeout=30)
        assert daemon.ctl("add", "-http", holds_new.url, "new").returncode == 0
        assert daemon.ctl("add", "-http", holds_old.url, "old").returncode == 0
        record_mirror_files(redis_db, 1, {PATH: len(new)}, go_time(T1))
        record_mirror_files(redis_db, 2, {PATH: len(old)}, go_time(T0))
        assert daemon.ctl("enable", "new").returncode == 0
        assert daemon.ctl("enable", "old").returncode == 0
        wait_until(lambda: redirect(daemon, PATH) == (302, holds_old.url + PATH[1:]), 10)
        waits = []
        for turn in range(6):  # back and forth: each first request after a rename is right
            content, mtime, holder = (new, T1, holds_new) if turn % 2 == 0 else (
                old, T0, holds_old)
            publish_atomically(repo, PATH, content, mtime)
            time.sleep(told)
            sent = time.monotonic()
            assert redirect(daemon, PATH) == (302, holder.url + PATH[1:]), turn
            waits.append(time.monotonic() - sent)
            assert all(redirect(daemon, PATH)[1].startswith(holder.url) for _ in range(5))
        (repo / PATH.lstrip("/")).unlink()
        time.sleep(told)
        sent = time.monotonic()
        assert redirect(daemon, PATH)[0] == 404  # at once, not after the watch's latency
        waits.append(time.monotonic() - sent)
        print(f"\nfirst request after the change answered in {max(waits) * 1000:.0f} ms "
              f"at most ({', '.join(f'{w * 1000:.0f}' for w in waits)} ms)")
        log = daemon.log()
    finally:
        daemon.stop()
        holds_new.stop()
        holds_old.stop()
    assert "Traceback" not in log


# The service on the test's reactor, against a real redis-server.

@pytest_twisted.async_yield_fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Any]:
    host, port = redis_server.address.split(":")
    connection = await txredisapi.Connection(host, int(port), dbid=0, reconnect=False,
                                             convertNumbers=False)
    yield connection
    await connection.disconnect()


async def settle(condition: Callable[[], bool], timeout: float = 3.0) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout} s")
        await deferLater(REACTOR, 0.02)
    return time.monotonic() - start


async def started(repo: Path, client: Any) -> tuple[RepositoryScanner, RepositoryWatcher]:
    config = Config(repository=str(repo), repository_scan_interval=0,
                    hashes=Hashes(sha256=True))
    scanner = RepositoryScanner(lambda: config, lambda: client, REACTOR)
    watcher = RepositoryWatcher(lambda: config, lambda: client, REACTOR, scanner)
    scanner.startService()
    watcher.startService()
    await scanner.when_indexed()
    await settle(lambda: watcher.watching)
    return scanner, watcher


async def stopped(scanner: RepositoryScanner, watcher: RepositoryWatcher) -> None:
    watcher.stopService()
    await scanner.stopService()


@pytest_twisted.ensureDeferred
async def test_a_file_is_published_once_closed_never_half_written(
        tmp_path: Path, client: Any, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"first", T0)
    scanner, watcher = await started(repo, client)
    try:
        with (repo / "a.txt").open("wb") as stream:
            stream.write(b"half")
            stream.flush()
            await deferLater(REACTOR, 0.6)  # three debounce periods, still open
            assert redis_db.hget(keys.file("/a.txt"), "size") == "5"
            stream.write(b" and the rest")
        await settle(lambda: redis_db.hget(keys.file("/a.txt"), "size") == "17")
        digest = redis_db.hget(keys.file("/a.txt"), "sha256")
        assert digest == hashlib.sha256(b"half and the rest").hexdigest()
        # Opened for writing and closed without a change: nothing to publish.
        subscriber = redis_db.pubsub(ignore_subscribe_messages=True)
        subscriber.subscribe(keys.CHANNEL_FILE_UPDATE)
        await deferLater(REACTOR, 0.3)  # the batch of the last close is done
        while subscriber.get_message(timeout=0.01) is not None:
            pass
        (repo / "a.txt").open("ab").close()
        await deferLater(REACTOR, 0.6)
        assert subscriber.get_message(timeout=0.01) is None
        subscriber.close()
    finally:
        await stopped(scanner, watcher)


@pytest_twisted.ensureDeferred
async def test_new_directories_are_watched_and_removals_published(
        tmp_path: Path, client: Any, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"a", T0)
    scanner, watcher = await started(repo, client)
    messages: list[str] = []
    subscriber = redis_db.pubsub()
    subscriber.subscribe(keys.CHANNEL_FILE_UPDATE)
    try:
        (repo / "new" / "deeper").mkdir(parents=True)
        await settle(lambda: len(watcher._notifier._watchpaths) == 3)  # type: ignore[union-attr]
        repo_file(repo, "/new/deeper/b.txt", b"bb", T0)
        await settle(lambda: redis_db.sismember(keys.FILES, "/new/deeper/b.txt"))
        # A tree moved in at once: its files are found by listing it.
        outside = tmp_path / "outside"
        repo_file(outside, "/x/y/c.txt", b"ccc", T0)
        os.rename(outside / "x", repo / "x")
        await settle(lambda: redis_db.sismember(keys.FILES, "/x/y/c.txt"))
        assert redis_db.hget(keys.file("/x/y/c.txt"), "size") == "3"
        (repo / "a.txt").unlink()
        await settle(lambda: not redis_db.sismember(keys.FILES, "/a.txt"))
        assert not redis_db.exists(keys.file("/a.txt"))
        # A deleted subdirectory leaves the rest of the watch working (Twisted would close it).
        (repo / "new" / "deeper" / "b.txt").unlink()
        (repo / "new" / "deeper").rmdir()
        await settle(lambda: not redis_db.sismember(keys.FILES, "/new/deeper/b.txt"))
        repo_file(repo, "/.d.txt.tmp", b"d", T0)
        os.rename(repo / ".d.txt.tmp", repo / "d.txt")  # a temporary name is never published
        await settle(lambda: redis_db.sismember(keys.FILES, "/d.txt"))
        while (message := subscriber.get_message(timeout=0.1)) is not None:
            if message["type"] == "message":
                messages.append(message["data"])
        assert {"/new/deeper/b.txt", "/x/y/c.txt", "/a.txt", "/d.txt"} <= set(messages)
        assert "/.d.txt.tmp" not in messages
    finally:
        subscriber.close()
        await stopped(scanner, watcher)


@pytest_twisted.ensureDeferred
async def test_a_directory_moved_away_or_a_flood_falls_back_to_a_full_scan(
        tmp_path: Path, client: Any, redis_db: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/sub/a.txt", b"a", T0)
    repo_file(repo, "/b.txt", b"b", T0)
    scanner, watcher = await started(repo, client)
    try:
        with captured_log("mirrorbits.scan.watch") as said:
            await _moved_away_then_flood(repo, tmp_path, redis_db, monkeypatch)
    finally:
        await stopped(scanner, watcher)
    assert "[source] Full scan: a directory was moved away" in said
    assert "[source] Full scan: more than 50 paths changed at once" in said
    assert MAX_PENDING > 1000


async def _moved_away_then_flood(repo: Path, tmp_path: Path, redis_db: redis.Redis,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    os.rename(repo / "sub", tmp_path / "gone")
    await settle(lambda: not redis_db.sismember(keys.FILES, "/sub/a.txt"))
    assert redis_db.sismember(keys.FILES, "/b.txt")
    monkeypatch.setattr("mirrorbits.scan.watch.MAX_PENDING", 50)
    repo_file(repo, "/flood/first.txt", b"f", T0)  # the directory is watched from now on
    await settle(lambda: redis_db.sismember(keys.FILES, "/flood/first.txt"))
    for index in range(60):
        repo_file(repo, f"/flood/{index}.txt", b"f", T0)
    await settle(lambda: all(redis_db.sismember(keys.FILES, f"/flood/{index}.txt")
                             for index in range(60)), timeout=10)


@pytest_twisted.ensureDeferred
async def test_a_burst_of_events_keeps_the_reactor_responsive(
        tmp_path: Path, client: Any, redis_db: redis.Redis) -> None:
    from twisted.internet.task import LoopingCall
    from twisted.internet.threads import deferToThread

    count = 30_000
    repo = tmp_path / "repo"
    repo_file(repo, "/keep.txt", b"k", T0)
    scanner, watcher = await started(repo, client)
    # A stall is timed twice: on the wall clock, and in the reactor thread's CPU time (the
    # work done in one go without yielding), which other processes (a parallel test run)
    # and the writing thread (the GIL) do not lengthen.
    gaps: list[float] = []
    cpu_gaps: list[float] = []
    stalls: list[tuple[float, float]] = []
    begin = time.monotonic()
    last = [time.monotonic(), time.thread_time()]

    def beat() -> None:
        now, cpu = time.monotonic(), time.thread_time()
        gaps.append(now - last[0])
        cpu_gaps.append(cpu - last[1])
        if now - last[0] > 0.15:
            stalls.append((round(now - begin, 2), round(now - last[0], 2)))
        last[:] = [now, cpu]

    heart = LoopingCall(beat)
    heart.start(0.01)

    def create() -> None:
        for directory in range(30):
            (repo / f"d{directory}").mkdir()
        for index in range(count):
            (repo / f"d{index % 30}" / f"{index}.bin").write_bytes(b"x")

    try:
        start = time.monotonic()
        await deferToThread(create)
        written = time.monotonic() - start
        await settle(lambda: redis_db.scard(keys.FILES) == count + 1, timeout=120)
        indexed = time.monotonic() - start
    finally:
        heart.stop()
        await stopped(scanner, watcher)
    print(f"\n{count} files written in {written:.1f} s, all published after {indexed:.1f} s; "
          f"longest reactor stall {max(gaps) * 1000:.0f} ms, "
          f"{max(cpu_gaps) * 1000:.0f} ms of CPU {stalls}")
    assert max(cpu_gaps) < 1.0  # about 0.1 s measured (0.26 s on the wall clock)


@pytest_twisted.ensureDeferred
async def test_a_queue_overflow_falls_back_to_a_full_scan(
        tmp_path: Path, client: Any, redis_db: redis.Redis) -> None:
    import struct

    from twisted.internet.inotify import IN_Q_OVERFLOW

    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"a", T0)
    scanner, watcher = await started(repo, client)
    try:
        # What the kernel reads out when its queue overflowed: watch descriptor -1.
        overflow = struct.pack("=LLLL", 0xFFFFFFFF, IN_Q_OVERFLOW, 0, 0)
        with captured_log("mirrorbits.scan.watch") as said:
            watcher._notifier._doRead(overflow)  # type: ignore[union-attr]
        assert said == ["[source] Full scan: the inotify queue overflowed"]
        assert watcher.watching  # and the watch goes on
        repo_file(repo, "/b.txt", b"b", T0)
        await settle(lambda: redis_db.sismember(keys.FILES, "/b.txt"))
    finally:
        await stopped(scanner, watcher)


@pytest_twisted.ensureDeferred
async def test_the_watch_follows_a_reload(
        tmp_path: Path, client: Any, redis_db: redis.Redis) -> None:
    import attrs

    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"a", T0)
    config = [Config(repository=str(repo), repository_scan_interval=0)]
    scanner = RepositoryScanner(lambda: config[0], lambda: client, REACTOR)
    watcher = RepositoryWatcher(lambda: config[0], lambda: client, REACTOR, scanner)
    scanner.startService()
    watcher.startService()
    try:
        await scanner.when_indexed()
        await settle(lambda: watcher.watching)
        config[0] = attrs.evolve(config[0], watch_repository=False)
        watcher.config_changed()
        assert not watcher.watching
        repo_file(repo, "/b.txt", b"b", T0)
        await deferLater(REACTOR, 0.5)
        assert not redis_db.sismember(keys.FILES, "/b.txt")
        config[0] = attrs.evolve(config[0], watch_repository=True)
        watcher.config_changed()
        await settle(lambda: watcher.watching)
        repo_file(repo, "/c.txt", b"c", T0)
        await settle(lambda: redis_db.sismember(keys.FILES, "/c.txt"))
    finally:
        await stopped(scanner, watcher)
