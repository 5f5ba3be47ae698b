"""rsync mirror scans against a real ``rsync --daemon`` and a real redis-server (spec §6.2, §6.4,
§3.4, §13; §20 items 9, 10, 21, 22; conformance README §6.1 item 1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import attrs
import pytest
import pytest_twisted  # type: ignore[import-untyped]
import redis
import txredisapi
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from mirrorbits.scan.commit import BATCH, ScanResult, commit_scan, scan_mirror
from mirrorbits.scan.rsync import ScanError, ScanListing, rsync_list
from mirrorbits.scan.rsync_listing import ListedFile
from mirrorbits.scan.walk import ScanAborted
from mirrorbits.store import keys
from mirrorbits.store.errors import ScanInProgress
from mirrorbits.store.events import SCANNER_RSYNC
from mirrorbits.store.scans import acquire_scan_lock
from tests.servers import RedisServer, rsync_daemon

pytestmark = pytest.mark.integration

REACTOR: Any = global_reactor
FIXTURE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "rsync_scan" / "madrid.json").read_text()
)
SCAN_TIME = 1_795_571_680
PASSWORD = "s3cret:pw"

F = TypeVar("F", bound=Callable[..., Any])


def ensure_deferred(test: F) -> F:
    """``pytest_twisted.ensureDeferred`` with a type (the library is untyped)."""
    return cast(F, pytest_twisted.ensureDeferred(test))


def async_yield_fixture(fixture: F) -> F:
    return cast(F, pytest_twisted.async_yield_fixture(fixture))


def write_tree(root: Path, files: list[dict[str, Any]]) -> None:
    for entry in files:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"m" * entry["size"])
        os.utime(path, ns=(entry["mtime_ns"], entry["mtime_ns"]))


@attrs.define
class RsyncDaemon:
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, module: str) -> str:
        return f"rsync://127.0.0.1:{self.port}/{module}/"

    def tree(self, module: str) -> Path:
        return self.root / module


@pytest.fixture
def rsyncd(tmp_path: Path) -> Iterator[RsyncDaemon]:
    binary = shutil.which("rsync")
    if binary is None:
        pytest.skip("rsync is not installed")
    root = tmp_path / "modules"
    write_tree(root / "full", FIXTURE["tree"])
    for link in FIXTURE["symlinks"]:
        (root / "full" / link["path"].lstrip("/")).symlink_to(link["target"])
    write_tree(root / "partial", FIXTURE["tree"][:2])
    (root / "empty").mkdir(parents=True)
    write_tree(root / "secret", FIXTURE["tree"][:1])
    secrets = tmp_path / "rsyncd.secrets"
    secrets.write_text(f"scanuser:{PASSWORD}\n")
    secrets.chmod(0o600)
    modules = {module: root / module for module in ("full", "partial", "empty", "secret")}
    # the last module, "secret", asks for a password
    with rsync_daemon(tmp_path, modules,
                      settings=["auth users = scanuser", f"secrets file = {secrets}"]) as server:
        assert server.process is not None
        yield RsyncDaemon(root=root, port=server.port, process=server.process)


@async_yield_fixture
async def client(redis_server: RedisServer, redis_db: redis.Redis) -> AsyncIterator[Any]:
    connection = await txredisapi.ConnectionPool(
        redis_server.host, redis_server.port, dbid=0, poolsize=3, reconnect=False,
        convertNumbers=False,
    )
    yield connection
    await connection.disconnect()


@pytest.fixture
def db(redis_db: redis.Redis) -> redis.Redis:
    """Mirror 1 ``madrid`` registered and the local repository's ``FILES`` indexed."""
    redis_db.hset(keys.MIRRORS, "1", "madrid")
    redis_db.hset(keys.mirror(1), mapping={"ID": "1", "name": "madrid"})
    redis_db.sadd(keys.FILES, *FIXTURE["keys"]["FILES"]["value"])
    return redis_db


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(SCAN_TIME)
    return clock


async def scan(client: Any, clock: Clock, url: str) -> ScanResult:
    async def lister(name: str) -> ScanListing:
        return await rsync_list(REACTOR, url, 30, name=name)

    return await scan_mirror(client, clock, 1, SCANNER_RSYNC, lister)


def entries(db: redis.Redis) -> list[dict[str, Any]]:
    result = []
    for text in db.lrange(keys.mirror_logs(1), 0, -1):
        entry = json.loads(text)
        assert entry.pop("Timestamp").endswith("Z")
        result.append(entry)
    return result


def dump(db: redis.Redis, key: str) -> Any:
    kind = db.type(key)
    if kind == "set":
        return sorted(db.smembers(key))
    if kind == "hash":
        return db.hgetall(key)
    return kind


def mirror_keys(db: redis.Redis) -> dict[str, Any]:
    """Every key a scan of mirror 1 writes, except ``MIRROR_1`` and its log."""
    names = [name for pattern in ("MIRRORFILES*", "HANDLEDFILES_*", "FILEMIRRORS_*",
                                  "FILEINFO_*", "SCANNING_*")
             for name in db.scan_iter(match=pattern)]
    return {name: dump(db, name) for name in names}


@ensure_deferred
async def test_scan_writes_what_the_reference_writes(
    rsyncd: RsyncDaemon, client: Any, db: redis.Redis, clock: Clock
) -> None:
    pubsub = db.pubsub()
    pubsub.subscribe(keys.CHANNEL_MIRROR_FILE_UPDATE, keys.CHANNEL_MIRROR_UPDATE)
    for _ in range(2):
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"

    result = await scan(client, clock, rsyncd.url("full"))

    assert result == ScanResult(files=11, known=9, removed=0)
    # Listed by rsync as gu\#303\#255a-r\#303\#241pida.pdf, stored decoded: it matches FILES.
    assert "/manuals/guía-rápida.pdf" in db.smembers(keys.handled_files(1))
    for key, expected in FIXTURE["keys"].items():
        assert db.type(key) == expected["type"], key
        assert dump(db, key) == expected["value"], key
    paths = FIXTURE["keys"]["MIRRORFILES_1"]["value"]
    for path in paths:
        assert db.smembers(keys.file_mirrors(path)) == {"1"}
    assert not db.exists(keys.mirror_files_tmp(1), keys.scanning(1))
    assert not db.exists(keys.file_mirrors("/stable-amd64.deb"))
    fields = db.hgetall(keys.mirror(1))
    assert fields["lastSync"] == fields["lastSuccessfulSync"] == str(SCAN_TIME)
    for name, value in FIXTURE["mirror_fields"].items():
        assert fields[name] == value
    assert entries(db) == FIXTURE["log_entries"]
    messages: dict[str, list[str]] = {}
    for _ in range(100):
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is None:
            break
        messages.setdefault(message["channel"], []).append(message["data"])
    pubsub.close()
    assert sorted(messages[keys.CHANNEL_MIRROR_FILE_UPDATE]) == sorted(f"1 {p}" for p in paths)
    assert messages[keys.CHANNEL_MIRROR_UPDATE] == ["1", "1"]


@ensure_deferred
async def test_second_scan_removes_a_deleted_file(
    rsyncd: RsyncDaemon, client: Any, db: redis.Redis, clock: Clock
) -> None:
    await scan(client, clock, rsyncd.url("full"))
    (rsyncd.tree("full") / "pool" / "empty.lst").unlink()
    write_tree(rsyncd.tree("full"), [{"path": "/new file.txt", "size": 7, "mtime_ns": 0}])
    clock.advance(60)

    result = await scan(client, clock, rsyncd.url("full"))

    assert result == ScanResult(files=11, known=8, removed=1)
    files = db.smembers(keys.mirror_files(1))
    assert "/pool/empty.lst" not in files and "/new file.txt" in files
    assert not db.exists(keys.file_mirrors("/pool/empty.lst"))
    assert not db.exists(keys.file_info(1, "/pool/empty.lst"))
    assert "/pool/empty.lst" not in db.smembers(keys.handled_files(1))
    assert db.hgetall(keys.file_info(1, "/new file.txt")) == {
        "size": "7", "modTime": "1970-01-01 00:00:00 +0000 UTC"}
    assert db.hget(keys.mirror(1), "lastSuccessfulSync") == str(SCAN_TIME + 60)
    assert entries(db)[-1]["Removed"] == 1


@ensure_deferred
async def test_partial_mirror_and_then_zero_files_keeps_the_known_files(
    rsyncd: RsyncDaemon, client: Any, db: redis.Redis, clock: Clock
) -> None:
    partial = await scan(client, clock, rsyncd.url("partial"))
    assert partial == ScanResult(files=2, known=2, removed=0)
    before = mirror_keys(db)
    assert before[keys.mirror_files(1)] == ["/ANNOUNCE.md", "/dists/stable/Release"]

    empty = await scan(client, clock, rsyncd.url("empty"))

    assert empty == ScanResult(files=0, known=2, removed=0)
    assert mirror_keys(db) == before
    assert entries(db)[-1]["FilesIndexed"] == 0


@ensure_deferred
async def test_password_protected_module(
    rsyncd: RsyncDaemon, client: Any, db: redis.Redis, clock: Clock
) -> None:
    good = rsyncd.url("secret").replace("//", "//scanuser:s3cret%3Apw@", 1)
    assert await scan(client, clock, good) == ScanResult(files=1, known=1, removed=0)
    before = mirror_keys(db)

    bad = rsyncd.url("secret").replace("//", "//scanuser:wrong@", 1)
    with pytest.raises(ScanError) as raised:
        await scan(client, clock, bad)

    assert str(raised.value) == "rsync: Error starting client-server protocol"
    assert any("auth failed" in line for line in raised.value.stderr_tail)
    assert mirror_keys(db) == before
    assert entries(db)[-1] == {"Type": 1, "MirrorID": 1,
                               "Err": "rsync: Error starting client-server protocol"}


@ensure_deferred
async def test_unknown_module_is_a_clean_error(
    rsyncd: RsyncDaemon, client: Any, db: redis.Redis, clock: Clock
) -> None:
    with pytest.raises(ScanError) as raised:
        await scan(client, clock, rsyncd.url("nope"))

    assert str(raised.value) == "rsync: Error starting client-server protocol"
    assert any("Unknown module 'nope'" in line for line in raised.value.stderr_tail)
    assert mirror_keys(db) == {}
    fields = db.hgetall(keys.mirror(1))
    assert fields["lastSync"] == str(SCAN_TIME) and "lastSuccessfulSync" not in fields
    assert [entry["Type"] for entry in entries(db)] == [7, 1]


@ensure_deferred
async def test_scan_lock(client: Any, db: redis.Redis, clock: Clock) -> None:
    db.set(keys.scanning(1), "1", ex=10)
    with pytest.raises(ScanInProgress, match="scan already in progress"):
        await scan(client, clock, "rsync://127.0.0.1:1/none/")
    assert db.lrange(keys.mirror_logs(1), 0, -1) == []
    db.delete(keys.scanning(1))

    lock = await acquire_scan_lock(client, 1, clock)
    assert 0 < db.ttl(keys.scanning(1)) <= 10
    db.expire(keys.scanning(1), 3)
    clock.advance(5)
    for _ in range(200):
        if db.ttl(keys.scanning(1)) > 3:
            break
        await deferLater(REACTOR, 0.01)
    assert db.ttl(keys.scanning(1)) > 3
    await lock.release()
    assert not db.exists(keys.scanning(1))


def fake_rsync(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-rsync"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


@ensure_deferred
async def test_environment_and_arguments(tmp_path: Path) -> None:
    program = fake_rsync(tmp_path, '/usr/bin/env > "$0.env"; printf "%s\\n" "$@" > "$0.args"')

    await rsync_list(REACTOR, "rsync://bob:p%40ss@127.0.0.1:9/mod/dir/", 10, executable=program)

    env = dict(line.split("=", 1) for line in Path(program + ".env").read_text().splitlines())
    assert {k: env[k] for k in ("TZ", "USER", "RSYNC_PASSWORD")} == {
        "TZ": "UTC", "USER": "bob", "RSYNC_PASSWORD": "p@ss"}
    assert "PATH" not in env and "HOME" not in env
    assert Path(program + ".args").read_text().splitlines() == [
        "-r", "--no-motd", "--exclude=.~tmp~/", "--timeout=30", "--contimeout=30",
        "rsync://127.0.0.1:9/mod/dir/"]


@ensure_deferred
async def test_hostile_output_chatty_stderr_and_partial_transfer(tmp_path: Path) -> None:
    body = "\n".join([
        "head -c 2000000 /dev/zero | tr '\\0' 'e' >&2; echo >&2",
        "echo 'rsync: opendir \"/private\" (in mod) failed: Permission denied (13)' >&2",
        "echo '-rw-r--r--      1,234 2023/06/06 08:30:00 a b.txt'",
        "echo 'garbage line without fields'",
        "head -c 200000 /dev/zero | tr '\\0' 'x'; echo",
        "echo 'drwxr-xr-x      4,096 2023/06/06 08:30:00 dir'",
        "printf '%s' '-rw-r--r--          5 2023/06/06 08:30:00 last'",
        "exit 23",
    ])
    program = fake_rsync(tmp_path, body)

    listing = await rsync_list(REACTOR, "rsync://127.0.0.1:9/m/", 30, executable=program)

    assert [(f.path, f.size) for f in listing.files] == [("/a b.txt", 1234), ("/last", 5)]
    assert listing.skipped_lines == 2
    assert listing.warnings == (
        "rsync: opendir \"/private\" (in mod) failed: Permission denied (13)",
        "rsync: Partial transfer due to error",
    )


@pytest.mark.parametrize(("code", "message"), [
    (10, "rsync: Error in socket I/O"), (35, "Timeout waiting for daemon connection"),
    (12, "rsync: exit status 12"),
])
@ensure_deferred
async def test_exit_status_mapping(tmp_path: Path, code: int, message: str) -> None:
    program = fake_rsync(tmp_path, f"echo boom >&2; exit {code}")
    with pytest.raises(ScanError, match=f"^{message}$") as raised:
        await rsync_list(REACTOR, "rsync://127.0.0.1:9/m/", 30, executable=program)
    assert raised.value.stderr_tail == ("boom",)


@ensure_deferred
async def test_cancel_and_timeout_stop_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    program = fake_rsync(tmp_path, f'echo $$ > {pidfile}; exec sleep 30')

    running = Deferred.fromCoroutine(
        rsync_list(REACTOR, "rsync://127.0.0.1:9/m/", 30, executable=program))
    for _ in range(500):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await deferLater(REACTOR, 0.01)
    running.cancel()
    with pytest.raises(ScanAborted):
        await running
    pid = int(pidfile.read_text())
    for _ in range(500):
        if not Path(f"/proc/{pid}").exists():
            break
        await deferLater(REACTOR, 0.01)
    assert not Path(f"/proc/{pid}").exists()

    with pytest.raises(ScanError, match=r"no complete listing within 0\.3 s"):
        await rsync_list(REACTOR, "rsync://127.0.0.1:9/m/", 0.3, executable=program)


@ensure_deferred
async def test_bad_scheme() -> None:
    with pytest.raises(ScanError, match=r"^ftp://h/ does not start with rsync:// or rsyncs://$"):
        await rsync_list(REACTOR, "ftp://h/", 30)


def exec_calls(db: redis.Redis) -> int:
    stats = db.info("commandstats").get("cmdstat_exec", {"calls": 0})
    return int(stats["calls"])


@ensure_deferred
async def test_large_listing_is_written_in_bounded_transactions(
    client: Any, db: redis.Redis, clock: Clock
) -> None:
    files = tuple(ListedFile(f"/pool/f{n:05d}.deb", n, n * 1_000_000_000) for n in range(2500))
    db.sadd(keys.FILES, *(f.path for f in files[:100]))
    before = exec_calls(db)

    result = await commit_scan(client, 1, "madrid", ScanListing(files=files), SCANNER_RSYNC, clock)

    assert result == ScanResult(files=2500, known=100, removed=0)
    assert db.scard(keys.mirror_files(1)) == 2500
    assert db.hgetall(keys.file_info(1, "/pool/f02499.deb")) == {
        "size": "2499", "modTime": "1970-01-01 00:41:39 +0000 UTC"}
    assert exec_calls(db) - before >= 2500 * 3 // BATCH  # 3 commands a file, <= BATCH a MULTI

    kept = ScanListing(files=files[:1000])
    result = await commit_scan(client, 1, "madrid", kept, SCANNER_RSYNC, clock)

    assert result == ScanResult(files=1000, known=100, removed=1500)
    assert db.scard(keys.mirror_files(1)) == 1000
    assert not db.exists(keys.file_info(1, "/pool/f02499.deb"))
    assert not db.exists(keys.file_mirrors("/pool/f01000.deb"))
    assert db.smembers(keys.file_mirrors("/pool/f00999.deb")) == {"1"}
