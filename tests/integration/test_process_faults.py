"""``kill -9`` of the real daemon in the middle of a write, then a restart.

* during a repository scan's commit: ``FILES`` is the old set or the new one, every path it
  lists has a complete ``FILE_`` hash of the old or the new version, ``SOURCE_REPO_SYNC``
  dies with its TTL, and the next refresh after the restart leaves exactly the new state;
* during a mirror scan's commit: ``MIRRORFILES_<id>`` is the old listing or the new one, each
  of its paths keeps its ``FILEINFO_`` and its place in ``FILEMIRRORS_``, ``SCANNING_<id>``
  dies with its TTL, and the next scan leaves exactly the new listing;
* during statistics flushes under load: what Redis holds never exceeds the downloads
  answered, at most the last half second of counts is lost, and after the restart every
  download is counted exactly once.
"""

from __future__ import annotations

import http.client
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from mirrorbits.stats import FLUSH_INTERVAL
from tests.daemon import BIN, DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.servers import env_without_proxies, rsync_daemon

pytestmark = pytest.mark.integration

FILE_COUNT = 6_000  # a commit of several batches: the kill lands inside it
OLD_MTIME = 1_600_000_000
NEW_MTIME = 1_700_000_000
LOCK_TTL = 10


def tree_paths(count: int, offset: int = 0) -> list[str]:
    return [f"/d{n % 40:02d}/file-{n:06d}.bin" for n in range(offset, offset + count)]


OLD_PATHS = tree_paths(FILE_COUNT)
OLD_SET = set(OLD_PATHS)
# the new version: the first 1,000 files are gone, 1,000 are added, the first half of the
# rest is rewritten (a new size and mtime); the other files stay as they were
NEW_PATHS = tree_paths(FILE_COUNT, offset=1_000)
CHANGED = set(NEW_PATHS[: FILE_COUNT // 2])


def write_version(root: Path, new: bool) -> None:
    """Write the old or the new tree in ``root`` (removing what the other had)."""
    if new:
        for path in OLD_PATHS[:1_000]:
            (root / path.lstrip("/")).unlink()
    for path in NEW_PATHS if new else OLD_PATHS:
        changed = new and (path in CHANGED or path not in OLD_SET)
        content = b"new version\n" if changed else b"old\n"
        repo_file(root, path, content, NEW_MTIME if changed else OLD_MTIME)


def kill_when(daemon: DaemonProcess, db: redis.Redis, key: str, timeout: float = 60.0) -> None:
    """SIGKILL the daemon soon after ``key`` appears (a random moment of the commit)."""
    deadline = time.monotonic() + timeout
    while not db.exists(key):
        assert time.monotonic() < deadline, f"{key} never appeared"
        assert daemon.process is not None and daemon.process.poll() is None
        time.sleep(0.001)
    time.sleep(random.uniform(0.0, 0.15))
    assert daemon.process is not None
    daemon.process.kill()
    daemon.process.wait(10)
    daemon.stop()


def start_ctl(daemon: DaemonProcess, *args: str) -> subprocess.Popen[str]:
    host, port = daemon.rpc
    return subprocess.Popen(
        [str(BIN / "mirrorbits-ctl"), "-h", host, "-p", str(port), "-P", "test-rpc", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_without_proxies())


def assert_lock_dies_with_its_ttl(db: redis.Redis, key: str) -> None:
    ttl = db.ttl(key)
    assert ttl == -2 or 0 < ttl <= LOCK_TTL, (key, ttl)


@pytest.fixture
def daemon(tmp_path: Path, redis_server: Any, redis_db: redis.Redis) -> Iterator[DaemonProcess]:
    # the repository watch would publish the rewritten files one batch at a time: these
    # tests are about the full scan's commit
    process = DaemonProcess(workdir=tmp_path / "daemon",
                            values=base_config(tmp_path / "repo", redis_server.address,
                                               WatchLocalFiles="false"))
    yield process
    process.stop()


def file_record(db: redis.Redis, path: str) -> dict[str, str]:
    return db.hgetall(f"FILE_{path}")


def test_kill_during_a_repository_commit_leaves_the_old_or_the_new_index(
        tmp_path: Path, daemon: DaemonProcess, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    write_version(repo, new=False)
    daemon.start()
    assert daemon.ctl("refresh").returncode == 0
    old_records = {path: file_record(redis_db, path) for path in OLD_PATHS}
    assert all(record["size"] == "4" for record in old_records.values())

    write_version(repo, new=True)
    refresh = start_ctl(daemon, "refresh")
    kill_when(daemon, redis_db, "SOURCE_REPO_SYNC")
    refresh.communicate(timeout=30)

    listed = redis_db.smembers("FILES")
    rewritten = sum(file_record(redis_db, path).get("size") == "12" for path in CHANGED)
    print(f"killed with FILES {'new' if listed == set(NEW_PATHS) else 'old'}, "
          f"{rewritten}/{len(CHANGED)} changed FILE_ hashes written")
    assert listed in (set(OLD_PATHS), set(NEW_PATHS))
    for path in listed:
        record = file_record(redis_db, path)
        new_size = "12" if path in CHANGED or path not in old_records else "4"
        assert record.get("size") in {old_records.get(path, {}).get("size"), new_size}, path
        assert record.keys() >= {"size", "modTime"}, (path, record)
    assert_lock_dies_with_its_ttl(redis_db, "SOURCE_REPO_SYNC")

    daemon.start()
    refreshed = daemon.ctl("refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    assert redis_db.smembers("FILES") == set(NEW_PATHS)
    assert not redis_db.exists("FILES_TMP", "SOURCE_REPO_SYNC")
    for path in NEW_PATHS:
        expected = "12" if path in CHANGED or path not in old_records else "4"
        assert file_record(redis_db, path)["size"] == expected, path
    assert not any(redis_db.exists(f"FILE_{path}") for path in OLD_PATHS[:1_000])


@pytest.fixture
def rsync_module(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An ``rsync --daemon`` on loopback serving ``tmp_path/mirror`` as module ``pub``."""
    binary = shutil.which("rsync")
    if binary is None:
        pytest.skip("rsync is not installed")
    tree = tmp_path / "mirror"
    tree.mkdir()
    with rsync_daemon(tmp_path, {"pub": tree}) as server:
        yield tree, server.url("pub")


def mirror_view(db: redis.Redis, mirror_id: int) -> set[str]:
    return db.smembers(f"MIRRORFILES_{mirror_id}")


def test_kill_during_a_mirror_scan_commit_leaves_the_old_or_the_new_listing(
        tmp_path: Path, daemon: DaemonProcess, redis_db: redis.Redis,
        rsync_module: tuple[Path, str]) -> None:
    tree, url = rsync_module
    repo_file(tmp_path / "repo", "/a.txt", b"hello\n", OLD_MTIME)
    write_version(tree, new=False)
    daemon.start()
    assert daemon.ctl("refresh").returncode == 0
    added = daemon.ctl("add", "-http", "http://127.0.0.61/", "-rsync", url, "lisbon")
    assert added.returncode == 0, added.stderr
    scanned = daemon.ctl("scan", "lisbon")
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    assert mirror_view(redis_db, 1) == set(OLD_PATHS)

    write_version(tree, new=True)
    scan = start_ctl(daemon, "scan", "lisbon")
    kill_when(daemon, redis_db, "MIRRORFILESTMP_1")
    scan.communicate(timeout=30)

    listed = mirror_view(redis_db, 1)
    print(f"killed with MIRRORFILES {'new' if listed == set(NEW_PATHS) else 'old'}, "
          f"{redis_db.scard('MIRRORFILESTMP_1')} staged")
    assert listed in (set(OLD_PATHS), set(NEW_PATHS))
    paths = sorted(listed)
    with redis_db.pipeline(transaction=False) as pipe:
        for path in paths:
            pipe.hgetall(f"FILEINFO_1_{path}")
            pipe.sismember(f"FILEMIRRORS_{path}", "1")
        replies = pipe.execute()
    for path, info, member in zip(paths, replies[::2], replies[1::2], strict=True):
        assert info.keys() >= {"size", "modTime"} and member, (path, info, member)
    assert_lock_dies_with_its_ttl(redis_db, "SCANNING_1")

    daemon.start()
    deadline = time.monotonic() + LOCK_TTL + 5
    while True:
        rescanned = daemon.ctl("scan", "lisbon")
        if rescanned.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert rescanned.returncode == 0, rescanned.stdout + rescanned.stderr
    assert mirror_view(redis_db, 1) == set(NEW_PATHS)
    assert not redis_db.exists("MIRRORFILESTMP_1", "SCANNING_1")
    with redis_db.pipeline(transaction=False) as pipe:
        for path in OLD_PATHS[:1_000]:
            pipe.exists(f"FILEINFO_1_{path}")
            pipe.sismember(f"FILEMIRRORS_{path}", "1")
        assert not any(pipe.execute())


def download_loop(host: str, port: int, stop: threading.Event,
                  answered: list[int]) -> None:
    """GET /a.txt on one keep-alive connection until told to stop; count the 302s."""
    connection: http.client.HTTPConnection | None = None
    deadline = time.monotonic() + 30
    while not stop.is_set() and time.monotonic() < deadline and answered[0] < 20_000:
        try:
            if connection is None:
                connection = http.client.HTTPConnection(host, port, timeout=5)
            connection.request("GET", "/a.txt", headers={"X-Forwarded-For": "100.96.2.10"})
            response = connection.getresponse()
            response.read()
            if response.status == 302:
                answered[0] += 1
        except OSError:
            connection = None
            time.sleep(0.01)
        time.sleep(0.001)


def test_kill_during_statistics_flushes_never_counts_twice(
        tmp_path: Path, daemon: DaemonProcess, redis_db: redis.Redis) -> None:
    repo_file(tmp_path / "repo", "/a.txt", b"hello\n", 1687249800)
    daemon.args = ["--no-monitor"]
    daemon.start()
    assert daemon.ctl("refresh").returncode == 0
    put_a_txt_on_a_mirror(daemon, redis_db)
    host, port = daemon.http

    def counted() -> int:
        return int(redis_db.hget("STATS_FILE", "/a.txt") or 0)

    stop = threading.Event()
    answered = [0]
    loader = threading.Thread(target=download_loop, args=(host, port, stop, answered))
    started = time.monotonic()
    loader.start()
    try:
        deadline = time.monotonic() + 20
        while counted() < 300:  # several flushes have happened
            assert time.monotonic() < deadline, (counted(), answered)
            time.sleep(0.05)
        time.sleep(random.uniform(0.0, FLUSH_INTERVAL))  # a random moment of the cycle
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGKILL)
        rate = answered[0] / (time.monotonic() - started)  # answers per second
        daemon.process.wait(10)
        stop.set()
    finally:
        stop.set()
        loader.join(30)
    daemon.stop()
    before_kill, at_kill = answered[0], counted()
    # never more than was answered; at most the unflushed last interval is lost
    assert at_kill <= before_kill
    assert at_kill >= before_kill - rate * (FLUSH_INTERVAL + 1), (at_kill, before_kill, rate)

    daemon.start()
    again = [0]
    stop = threading.Event()
    stop_at = time.monotonic() + 2
    loader = threading.Thread(target=download_loop, args=(host, port, stop, again))
    loader.start()
    while time.monotonic() < stop_at:
        time.sleep(0.05)
    stop.set()
    loader.join(30)
    assert again[0] > 0
    # twistd re-raises SIGTERM after a clean stop, which flushes what is in memory
    assert daemon.stop() in (0, -signal.SIGTERM)
    assert counted() == at_kill + again[0]
