"""Mirror scans of awkward trees: odd file names, wrong copies, a mirror dying mid-scan and a
25,000-file listing (25 big-set pages), against a real ``rsync --daemon``, redis-server and
daemon (spec §6.2, §6.4, §8.3 rule 3, §8.4, §8.5)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import pytest
import redis
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from mirrorbits.scan.commit import ScanResult, scan_mirror
from mirrorbits.scan.rsync import ScanError, ScanListing, rsync_list
from mirrorbits.store import keys
from mirrorbits.store.events import SCANNER_RSYNC
from tests.daemon import DaemonProcess, base_config
from tests.integration.test_mirror_scan import own_redis, wait_until
from tests.integration.test_rsync_scan import (
    REACTOR,
    SCAN_TIME,
    RsyncDaemon,
    client,
    ensure_deferred,
    entries,
    fake_rsync,
    mirror_keys,
    rsyncd,
)
from tests.servers import RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.integration

__all__ = ["client", "own_redis", "rsyncd"]  # fixtures imported from other test modules

MTIME = 1_790_000_000  # 2026-09-21, whole seconds: rsync lists seconds
LOCATED = "100.96.2.10"  # Seville in tests/fixtures/geo
UNLOCATED = "100.96.200.7"  # in no network of the test databases


def put(root: Path, path: str, size: int, mtime: int = MTIME) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"x" * size)
    os.utime(target, (mtime, mtime))


def location_encoded(text: str) -> str:
    """The Location form: every byte but unreserved characters and "/" percent-encoded
    (RFC 3986; the reference escaped only bytes >= 0x80, docs/differences.md "HTTP")."""
    return quote(text, safe="/")


@pytest.fixture
def ddb(own_redis: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis(host=own_redis.host, port=own_redis.port, decode_responses=True)
    yield connection
    connection.close()


def start_daemon(tmp_path: Path, server: RedisServer, repo: Path) -> DaemonProcess:
    process = DaemonProcess(workdir=tmp_path / "run", values=base_config(repo, server.address),
                            args=["--no-monitor"])
    process.start()
    return process


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(daemon: DaemonProcess, path: str, client_ip: str,
        accept: str | None = None) -> tuple[int, Any, bytes]:
    """(status, headers, body) of ``GET path`` (already percent-encoded), no redirect followed."""
    host, port = daemon.http
    headers = {"X-Forwarded-For": client_ip}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers)
    try:
        with urllib.request.build_opener(_NoRedirect()).open(request, timeout=5) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def redirect(daemon: DaemonProcess, path: str, client_ip: str = LOCATED) -> str | None:
    status, headers, _ = get(daemon, quote(path), client_ip)
    return str(headers.get("Location")) if status == 302 else None


def add_and_scan(daemon: DaemonProcess, db: redis.Redis, name: str, rsync_url: str,
                 http_url: str) -> str:
    """``add``, ``scan -enable``, then mark the mirror up (no health checker runs)."""
    added = daemon.ctl("add", "-rsync", rsync_url, "-http", http_url, name)
    assert added.returncode == 0, added.stderr
    scanned = daemon.ctl("scan", "-enable", name)
    assert scanned.returncode == 0, scanned.stderr
    mirror_id = next(str(i) for i, n in db.hgetall(keys.MIRRORS).items() if n == name)
    db.hset(keys.mirror(mirror_id), "httpUp", "1")
    db.publish(keys.CHANNEL_MIRROR_UPDATE, mirror_id)
    return mirror_id


# 1. Odd file names --------------------------------------------------------------------------

ODD_NAMES = ("/docs/with space.txt", "/docs/guía rápida.pdf", "/a\nb.txt")


def test_odd_names_are_indexed_and_redirected(
    tmp_path: Path, own_redis: RedisServer, ddb: redis.Redis, rsyncd: RsyncDaemon
) -> None:
    repo = tmp_path / "repo"
    mirror_tree = rsyncd.tree("empty") / "odd"
    for size, path in enumerate(ODD_NAMES, start=10):
        put(repo, path, size)
        put(mirror_tree, path, size)
    daemon = start_daemon(tmp_path, own_redis, repo)
    try:
        assert daemon.ctl("refresh").returncode == 0
        assert ddb.smembers(keys.FILES) == set(ODD_NAMES)
        http = "http://127.0.0.2/m/"
        mirror_id = add_and_scan(daemon, ddb, "odd", rsyncd.url("empty") + "odd/", http)

        assert ddb.smembers(keys.mirror_files(mirror_id)) == set(ODD_NAMES)
        assert ddb.smembers(keys.handled_files(mirror_id)) == set(ODD_NAMES)
        for size, path in enumerate(ODD_NAMES, start=10):
            assert ddb.smembers(keys.file_mirrors(path)) == {mirror_id}, path
            assert ddb.hget(keys.file_info(mirror_id, path), "size") == str(size)

        for path in ODD_NAMES:
            expected = http + location_encoded(path.lstrip("/"))
            wait_until(lambda p=path, e=expected: redirect(daemon, p) == e)  # type: ignore[misc]
            assert redirect(daemon, path, UNLOCATED) == expected
        # The line feed is escaped: raw, the header would turn it into a space ("a b.txt").
        assert redirect(daemon, ODD_NAMES[2]) == http + "a%0Ab.txt"
        status, _, body = get(daemon, quote(ODD_NAMES[2]), LOCATED, accept="application/json")
        assert status == 200, body
        results = json.loads(body)
        assert results["FileInfo"]["Path"] == ODD_NAMES[2]
        assert [m["Name"] for m in results["MirrorList"]] == ["odd"]
        assert "Traceback" not in daemon.log()
    finally:
        daemon.stop()


# 2. Wrong copies ----------------------------------------------------------------------------

WRONG = "/pool/tool.iso"  # wrong size on "short", 2 h older on "stale": only "good" serves it
SIZED = "/pool/notes.txt"  # wrong size on "short" only


def test_wrong_copies_are_never_redirected_to(
    tmp_path: Path, own_redis: RedisServer, ddb: redis.Redis, rsyncd: RsyncDaemon
) -> None:
    repo = tmp_path / "repo"
    put(repo, WRONG, 4096)
    put(repo, SIZED, 300)
    modules = rsyncd.tree("empty")
    put(modules / "short", WRONG, 4095)
    put(modules / "short", SIZED, 299)
    put(modules / "stale", WRONG, 4096, MTIME - 7200)
    put(modules / "stale", SIZED, 300)
    put(modules / "good", WRONG, 4096)
    put(modules / "good", SIZED, 300)
    daemon = start_daemon(tmp_path, own_redis, repo)
    try:
        assert daemon.ctl("refresh").returncode == 0
        urls = {}
        for n, name in enumerate(("short", "stale", "good"), start=2):
            urls[name] = f"http://127.0.0.{n}/"
            add_and_scan(daemon, ddb, name, rsyncd.url("empty") + name + "/", urls[name])
        wait_until(lambda: redirect(daemon, WRONG) is not None)

        allowed = {WRONG: {urls["good"]}, SIZED: {urls["stale"], urls["good"]}}
        for path, bases in allowed.items():
            seen = set()
            for client_ip in (LOCATED, UNLOCATED):
                for _ in range(30):
                    target = redirect(daemon, path, client_ip)
                    assert target is not None
                    base = target.removesuffix(path.lstrip("/"))
                    assert base in bases, (path, client_ip, target)
                    seen.add(base)
            assert seen <= bases

        def excluded(path: str, client_ip: str) -> tuple[list[str], dict[str, str]]:
            status, _, body = get(daemon, quote(path), client_ip, accept="application/json")
            assert status == 200, body
            results = json.loads(body)
            located = results["ClientInfo"]["CountryCode"]
            assert located == ("ES" if client_ip == LOCATED else ""), results["ClientInfo"]
            return (sorted(m["Name"] for m in results["MirrorList"]),
                    {m["Name"]: m["ExcludeReason"] for m in results.get("ExcludedList", [])})

        for client_ip in (LOCATED, UNLOCATED):
            assert excluded(WRONG, client_ip) == (["good"], {
                "short": "File size mismatch", "stale": "Mod time mismatch (diff: 2h0m0s)"})
            assert excluded(SIZED, client_ip) == (["good", "stale"],
                                                  {"short": "File size mismatch"})
    finally:
        daemon.stop()


def test_a_newer_rule_takes_copies_synced_later_of_the_same_size(
    tmp_path: Path, own_redis: RedisServer, ddb: redis.Redis, rsyncd: RsyncDaemon
) -> None:
    """Upstream #199: mirrors that sync on their own keep times of their own, later than the
    origin's; every one was excluded. ``Newer: true`` on an ``AllowOutdatedFiles`` rule takes
    them, when they have the local file's size."""
    repo = tmp_path / "repo"
    put(repo, WRONG, 4096)
    modules = rsyncd.tree("empty")
    put(modules / "later", WRONG, 4096, MTIME + 86400)  # synced a day later, same size
    put(modules / "other", WRONG, 4000, MTIME + 86400)  # a newer, other file
    daemon = start_daemon(tmp_path, own_redis, repo)
    try:
        assert daemon.ctl("refresh").returncode == 0
        for n, name in enumerate(("later", "other"), start=2):
            add_and_scan(daemon, ddb, name, rsyncd.url("empty") + name + "/",
                         f"http://127.0.0.{n}/")

        def excluded() -> tuple[list[str], dict[str, str]]:
            status, _, body = get(daemon, quote(WRONG), LOCATED, accept="application/json")
            assert status in (200, 503), body  # 503: every mirror excluded, no fallback
            results = json.loads(body)
            return (sorted(m["Name"] for m in results["MirrorList"]),
                    {m["Name"]: m["ExcludeReason"] for m in results.get("ExcludedList", [])})

        wait_until(lambda: len(excluded()[1]) == 2)
        assert excluded() == ([], {"later": "Mod time mismatch (diff: -24h0m0s)",
                                   "other": "File size mismatch"})
        daemon.config_path.write_text(daemon.config_path.read_text() + (
            "AllowOutdatedFiles:\n  - Prefix: /pool/\n    Minutes: 0\n    Newer: true\n"))
        reloaded = daemon.ctl("reload")
        assert reloaded.returncode == 0, reloaded.stderr
        wait_until(lambda: excluded()[0] == ["later"])
        assert excluded() == (["later"], {"other": "File size mismatch"})
        assert redirect(daemon, WRONG) == "http://127.0.0.2/" + WRONG.lstrip("/")
    finally:
        daemon.stop()


# 3. A mirror dying mid-scan -----------------------------------------------------------------


@pytest.fixture
def scan_db(redis_db: redis.Redis) -> redis.Redis:
    redis_db.hset(keys.MIRRORS, "1", "dying")
    redis_db.hset(keys.mirror(1), mapping={"ID": "1", "name": "dying"})
    return redis_db


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(SCAN_TIME)
    return clock


async def scan(client: Any, clock: Clock, url: str, executable: str | None = None,
               timeout: float = 60) -> ScanResult:
    async def lister(name: str) -> ScanListing:
        return await rsync_list(REACTOR, url, timeout, name=name, executable=executable)

    return await scan_mirror(client, clock, 1, SCANNER_RSYNC, lister)


def listing_lines(count: int) -> str:
    return "\n".join(
        f"echo '-rw-r--r--          {n} 2026/09/21 10:00:00 late/file{n:04d}'"
        for n in range(count))


@pytest.mark.parametrize(("ending", "message"), [
    ("exit 12", "rsync: exit status 12"),
    ("kill -9 $$", "rsync: killed by signal 9"),
])
@ensure_deferred
async def test_listing_cut_short_keeps_the_known_files(
    tmp_path: Path, rsyncd: RsyncDaemon, client: Any, scan_db: redis.Redis, clock: Clock,
    ending: str, message: str,
) -> None:
    tree = rsyncd.tree("empty") / "ok"
    known = [f"/dir{d}/f{n}.bin" for d in range(3) for n in range(40)]
    for path in known:
        put(tree, path, 5)
    scan_db.sadd(keys.FILES, *known[:50])
    assert await scan(client, clock, rsyncd.url("empty") + "ok/") == ScanResult(120, 50, 0)
    before = mirror_keys(scan_db)
    clock.advance(60)
    program = fake_rsync(tmp_path, "\n".join([
        listing_lines(300), "echo 'rsync: connection unexpectedly closed' >&2", ending]))

    with pytest.raises(ScanError) as raised:
        await scan(client, clock, rsyncd.url("empty") + "ok/", executable=program)

    assert str(raised.value) == message
    assert mirror_keys(scan_db) == before
    assert entries(scan_db)[-1] == {"Type": 1, "MirrorID": 1, "Err": message}
    fields = scan_db.hgetall(keys.mirror(1))
    assert fields["lastSuccessfulSync"] == str(SCAN_TIME)
    assert fields["lastSync"] == str(SCAN_TIME + 60)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one: creating many files on a busy disk is slow."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path / "fast"
        return
    directory = Path(tempfile.mkdtemp(prefix="scan-trees-", dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@attrs.define
class ModuleDaemon:
    """``rsync --daemon`` serving one module ``tree``."""

    process: subprocess.Popen[bytes]
    url: str
    root: Path
    log: Path


def start_rsyncd(workdir: Path, root: Path, *options: str) -> ModuleDaemon:
    binary = shutil.which("rsync")
    if binary is None:
        pytest.skip("rsync is not installed")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "tree-rsyncd.conf"
    log = workdir / "tree-rsyncd.log"
    conf.write_text("\n".join([
        "use chroot = no", f"uid = {os.getuid()}", f"gid = {os.getgid()}",
        f"pid file = {workdir / 'tree-rsyncd.pid'}", f"log file = {log}",
        "[tree]", f"path = {root}", "read only = yes",
    ]) + "\n")
    process = subprocess.Popen(
        [binary, "--daemon", "--no-detach", f"--config={conf}", f"--port={port}",
         "--address=127.0.0.1", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port)
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return ModuleDaemon(process, f"rsync://127.0.0.1:{port}/tree/", root, log)


def stop_rsyncd(daemon: ModuleDaemon) -> None:
    if daemon.process.poll() is None:
        daemon.process.kill()
    daemon.process.wait(10)


@pytest.fixture
def slow_rsyncd(tmp_path: Path, fast_dir: Path) -> Iterator[ModuleDaemon]:
    """Sends at most 10 KiB/s, so a listing of a few thousand files lasts seconds."""
    daemon = start_rsyncd(tmp_path, fast_dir, "--bwlimit=10")
    yield daemon
    stop_rsyncd(daemon)


@pytest.fixture
def big_rsyncd(tmp_path: Path, fast_dir: Path) -> Iterator[ModuleDaemon]:
    daemon = start_rsyncd(tmp_path, fast_dir)
    yield daemon
    stop_rsyncd(daemon)


@ensure_deferred
async def test_rsync_daemon_killed_during_the_listing(
    slow_rsyncd: ModuleDaemon, client: Any, scan_db: redis.Redis, clock: Clock
) -> None:
    url, root, log = slow_rsyncd.url, slow_rsyncd.root, slow_rsyncd.log
    known = [f"/keep/f{n}.bin" for n in range(20)]
    for path in known:
        put(root / "small", path, 1)
    make_tree(root / "big", 30, 100)  # about 44 kB of listing: 4 s at 10 KiB/s
    scan_db.sadd(keys.FILES, *known)
    assert await scan(client, clock, url + "small/") == ScanResult(20, 20, 0)
    before = mirror_keys(scan_db)
    clock.advance(60)
    sent = log.read_text().count("building file list")

    running = Deferred.fromCoroutine(scan(client, clock, url + "big/"))
    for _ in range(2000):  # at most 10 s
        if log.read_text().count("building file list") > sent or running.called:
            break
        await deferLater(REACTOR, 0.005)
    assert not running.called, "the scan ended before the listing started"
    await deferLater(REACTOR, 0.3)  # part of the listing is on its way
    assert not running.called, "the listing was not slowed down"
    served = children(slow_rsyncd.process.pid)
    assert served, "the rsync daemon has no child serving the scan"
    for pid in served:
        os.kill(pid, signal.SIGKILL)
    slow_rsyncd.process.kill()

    with pytest.raises(ScanError) as raised:
        await running

    # rsync 3.x: "connection reset by peer" (exit 12; 10 when the socket fails first).
    assert str(raised.value) in {"rsync: exit status 12", "rsync: Error in socket I/O"}, (
        raised.value, raised.value.stderr_tail)
    assert mirror_keys(scan_db) == before
    assert entries(scan_db)[-1] == {"Type": 1, "MirrorID": 1, "Err": str(raised.value)}
    assert not scan_db.exists(keys.scanning(1), keys.mirror_files_tmp(1))


# 4. 25,000 files ----------------------------------------------------------------------------


def make_tree(root: Path, directories: int, per_directory: int) -> list[str]:
    """Empty files ``/dNNN/fNNNN``; returns their paths."""
    paths = []
    for d in range(directories):
        directory = root / f"d{d:03d}"
        directory.mkdir(parents=True)
        for n in range(per_directory):
            name = f"f{n:04d}"
            os.close(os.open(directory / name, os.O_CREAT | os.O_WRONLY, 0o644))
            paths.append(f"/d{d:03d}/{name}")
    return paths


@ensure_deferred
async def test_tens_of_thousands_of_files(
    big_rsyncd: ModuleDaemon, client: Any, scan_db: redis.Redis, clock: Clock
) -> None:
    paths = make_tree(big_rsyncd.root / "huge", 100, 250)
    assert len(paths) == 25_000
    local = paths[::3] + [f"/local-only/{n}" for n in range(500)]
    scan_db.sadd(keys.FILES, *local)

    started = time.monotonic()
    result = await scan(client, clock, big_rsyncd.url + "huge/", timeout=120)
    elapsed = time.monotonic() - started

    print(f"25,000-file rsync scan: {elapsed:.1f} s")
    assert result == ScanResult(files=25_000, known=len(paths[::3]), removed=0)
    assert scan_db.scard(keys.mirror_files(1)) == 25_000
    handled = scan_db.smembers(keys.handled_files(1))
    assert handled == scan_db.sinter([keys.FILES, keys.mirror_files(1)]) == set(paths[::3])
    assert scan_db.smembers(keys.file_mirrors("/d099/f0249")) == {"1"}
    assert scan_db.hget(keys.file_info(1, "/d000/f0000"), "size") == "0"
    assert not scan_db.exists(keys.scanning(1), keys.mirror_files_tmp(1))
    assert entries(scan_db)[-1]["FilesIndexed"] == 25_000
    assert elapsed < 120
