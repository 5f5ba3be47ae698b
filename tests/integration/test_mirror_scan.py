"""``mirrorbits-ctl scan`` against a real daemon, redis-server, ``rsync --daemon`` and an HTTP
mirror serving the trace file (spec §6.1, §6.6, §14.3)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from twisted.internet import reactor as global_reactor
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mirrorbits.model import Mirror
from mirrorbits.scan.trace import fetch_trace
from tests.daemon import DaemonProcess, base_config
from tests.integration.test_rsync_scan import (
    FIXTURE,
    RsyncDaemon,
    client,
    ensure_deferred,
    rsyncd,
    write_tree,
)
from tests.servers import RedisServer, http_tree

pytestmark = pytest.mark.integration

__all__ = ["client", "rsyncd"]  # fixtures, imported from the rsync scanner's tests

TRACE_STAMP = "1795571680"
FILE = "/pool/main/tool_2.4.1_amd64.deb"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def db(own_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host=own_redis.host, port=own_redis.port, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def mirror_http(rsyncd: RsyncDaemon) -> Iterator[str]:
    """The ``full`` module's tree over HTTP, its trace file holding :data:`TRACE_STAMP`."""
    tree = rsyncd.tree("full")
    (tree / ".mirror-trace").write_text(TRACE_STAMP + "\n")
    with http_tree(tree) as url:
        yield url


@pytest.fixture
def daemon(tmp_path: Path, own_redis: RedisServer) -> Iterator[DaemonProcess]:
    """A daemon without the monitor: nothing is scanned until the CLI asks."""
    repo = tmp_path / "repo"
    local = [f for f in FIXTURE["tree"] if f["path"] in set(FIXTURE["keys"]["FILES"]["value"])]
    write_tree(repo, local)
    write_tree(repo, [{"path": "/pool/main/unmirrored_1.0.orig.tar.xz", "size": 10,
                       "mtime_ns": 1_700_000_000_000_000_000}])
    values = base_config(repo, own_redis.address, TraceFileLocation=".mirror-trace")
    process = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    process.start()
    yield process
    process.stop()


def wait_until(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def location(daemon: DaemonProcess, path: str) -> str | None:
    host, port = daemon.http
    request = urllib.request.Request(f"http://{host}:{port}{path}",
                                     headers={"X-Forwarded-For": "100.96.2.10"})
    try:
        urllib.request.build_opener(_NoRedirect()).open(request, timeout=5)
    except urllib.error.HTTPError as err:
        return err.headers.get("Location") if err.code == 302 else None
    return None


def test_scan_needs_refresh_then_indexes_enables_and_redirects(
    daemon: DaemonProcess, rsyncd: RsyncDaemon, mirror_http: str, db: redis.Redis
) -> None:
    added = daemon.ctl("add", "-rsync", rsyncd.url("full"), "-http", mirror_http, "m1")
    assert added.returncode == 0, added.stderr

    early = daemon.ctl("scan", "-enable", "m1")
    assert early.returncode == 1
    assert early.stdout == "Scanning m1... "
    assert early.stderr.strip() == (
        "scan error: local repository not yet indexed. You should run 'refresh' first!")
    assert db.hget("MIRROR_1", "enabled") != "1"

    assert daemon.ctl("refresh").returncode == 0
    scanned = daemon.ctl("scan", "-enable", "m1")
    assert scanned.returncode == 0, scanned.stderr
    assert scanned.stdout == "Scanning m1... 11 files indexed, 9 known and 0 removed\n  ∟ Enabled\n"
    assert db.hget("MIRROR_1", "enabled") == "1"
    assert db.sismember("FILEMIRRORS_" + FILE, "1")
    assert db.hgetall("FILEINFO_1_" + FILE)["size"] == "48213"
    assert db.scard("HANDLEDFILES_1") == 9
    assert "/pool/main/unmirrored_1.0.orig.tar.xz" not in db.smembers("HANDLEDFILES_1")
    wait_until(lambda: db.hget("MIRROR_1", "lastModTime") == TRACE_STAMP)
    logs = daemon.ctl("logs", "m1").stdout
    assert "RSYNC scan started" in logs
    assert "Scan completed: 11 files (9 known), 0 removed" in logs

    db.hset("MIRROR_1", "httpUp", "1")
    db.publish("_mirrorbits_mirror_update", "1")
    wait_until(lambda: location(daemon, FILE) == mirror_http.rstrip("/") + FILE)


def test_scan_errors_are_clean(
    daemon: DaemonProcess, rsyncd: RsyncDaemon, db: redis.Redis
) -> None:
    assert daemon.ctl("add", "-rsync", rsyncd.url("nope"), "-http", "http://127.0.0.2/",
                      "m2").returncode == 0
    assert daemon.ctl("add", "-http", "http://127.0.0.3/", "m3").returncode == 0
    assert daemon.ctl("refresh").returncode == 0

    unknown = daemon.ctl("scan", "m2")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("\nscan error: rsync: ") or unknown.stderr.startswith(
        "scan error: rsync: "), unknown.stderr
    assert "Traceback" not in unknown.stderr + daemon.log()
    # what rsync said, not only its exit status ("Error starting client-server protocol")
    assert unknown.stderr.strip().endswith(": @ERROR: Unknown module 'nope'"), unknown.stderr
    message = unknown.stderr.strip().removeprefix("scan error: ")
    assert message.removesuffix(": @ERROR: Unknown module 'nope'") in daemon.ctl(
        "logs", "m2").stdout

    no_url = daemon.ctl("scan", "-rsync", "m3")
    assert no_url.returncode == 1
    assert no_url.stderr.strip() == (
        "scan error: no suitable URL for the scan: m3 has no rsync URL")
    by_http = daemon.ctl("scan", "m3")  # HTTP only: its index pages (nothing listens there)
    assert by_http.returncode == 1
    assert by_http.stderr.strip().startswith("scan error: http error http://127.0.0.3/: ")

    forced = daemon.ctl("scan", "-ftp", "m2")
    assert forced.stderr.strip() == "scan error: no suitable URL for the scan: m2 has no FTP URL"

    db.set("SCANNING_1", "1", ex=10)  # m2 is mirror 1
    locked = daemon.ctl("scan", "m2")
    assert locked.returncode == 1
    assert locked.stderr.strip() == "scan error: scan already in progress"
    assert daemon.ctl("list", "-disabled").returncode == 0


def test_max_scan_entries_of_the_configuration_bounds_a_listing(
    tmp_path: Path, own_redis: RedisServer, rsyncd: RsyncDaemon, db: redis.Redis
) -> None:
    repo = tmp_path / "repo"
    write_tree(repo, FIXTURE["tree"][:2])
    values = base_config(repo, own_redis.address, MaxScanEntries=5)
    process = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    process.start()
    try:
        assert process.ctl("add", "-rsync", rsyncd.url("full"), "-http", "http://127.0.0.2/",
                           "m1").returncode == 0
        assert process.ctl("refresh").returncode == 0
        scanned = process.ctl("scan", "m1")
        message = "rsync: more than 5 entries listed (MaxScanEntries), scan abandoned"
        assert scanned.returncode == 1
        assert scanned.stderr.strip() == f"scan error: {message}"
        assert message in process.ctl("logs", "m1").stdout
        assert not db.exists("MIRRORFILES_1")
        assert "Traceback" not in process.log()
    finally:
        process.stop()


def test_monitor_scans_an_enabled_mirror(
    tmp_path: Path, own_redis: RedisServer, rsyncd: RsyncDaemon, mirror_http: str,
    db: redis.Redis,
) -> None:
    repo = tmp_path / "repo"
    write_tree(repo, FIXTURE["tree"][:3])
    values = base_config(repo, own_redis.address, TraceFileLocation=".mirror-trace",
                         ScanInterval="1")
    process = DaemonProcess(workdir=tmp_path / "run", values=values)
    process.start()
    try:
        wait_until(lambda: db.exists("FILES"))
        assert process.ctl("add", "-rsync", rsyncd.url("partial"), "-http", mirror_http,
                           "m1").returncode == 0
        time.sleep(1.5)
        assert not db.exists("MIRRORFILES_1")  # disabled mirrors are not scanned
        assert process.ctl("enable", "m1").returncode == 0
        wait_until(lambda: db.scard("MIRRORFILES_1") == 2)
        # the commit's later steps may land a moment after MIRRORFILES (seen under load)
        wait_until(lambda: db.scard("HANDLEDFILES_1") == 2)
        assert db.smembers("HANDLEDFILES_1") == {f["path"] for f in FIXTURE["tree"][:2]}
        wait_until(lambda: db.hget("MIRROR_1", "lastModTime") == TRACE_STAMP)
        first = db.hget("MIRROR_1", "lastSync")
        time.sleep(1.5)
        assert db.hget("MIRROR_1", "lastSync") == first  # not due again before ScanInterval
    finally:
        process.stop()


class _Trace(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        self.user_agent = request.getHeader(b"user-agent")
        if request.path == b"/gone/trace":
            request.setResponseCode(404)
        return b"1700000000\n"


@ensure_deferred
async def test_trace_file_only_a_200_answer_is_read(client: Any, redis_db: redis.Redis) -> None:
    resource = _Trace()
    reactor: Any = global_reactor
    port: Any = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    base = f"http://127.0.0.1:{port.getHost().port}"
    try:
        gone = Mirror(id=1, name="m1", http_url=base + "/gone/")
        assert await fetch_trace(reactor, client, gone, "trace") is None
        assert redis_db.hget("MIRROR_1", "lastModTime") is None  # the 404 page is not parsed
        fine = Mirror(id=1, name="m1", http_url=base + "/ok")
        assert await fetch_trace(reactor, client, fine, "/trace") == 1700000000
        assert redis_db.hget("MIRROR_1", "lastModTime") == "1700000000"
        assert resource.user_agent is not None
        assert resource.user_agent.startswith(b"Mirrorbits/v") and resource.user_agent.endswith(
            b" TRACE")
    finally:
        await port.stopListening()


def test_http_only_mirror_is_scanned_through_its_index_pages(
    daemon: DaemonProcess, rsyncd: RsyncDaemon, mirror_http: str, db: redis.Redis
) -> None:
    """The same tree by rsync (m1) and by Python's ``http.server`` listings (m2: plain lists,
    so every size and time comes from a ``HEAD``): the same sizes and times; the HTTP server
    follows the symbolic link that rsync lists as a link, so m2 has one file more."""
    assert daemon.ctl("add", "-rsync", rsyncd.url("full"), "-http", mirror_http,
                      "m1").returncode == 0
    assert daemon.ctl("add", "-http", mirror_http, "m2").returncode == 0
    assert daemon.ctl("refresh").returncode == 0
    assert daemon.ctl("scan", "m1").returncode == 0
    scanned = daemon.ctl("scan", "m2")
    assert scanned.returncode == 0, scanned.stderr
    assert scanned.stdout == "Scanning m2... 12 files indexed, 9 known and 0 removed\n"
    by_rsync = db.smembers("MIRRORFILES_1")
    assert db.smembers("MIRRORFILES_2") == by_rsync | {"/stable-amd64.deb"}
    for path in by_rsync:
        assert db.hgetall(f"FILEINFO_2_{path}") == db.hgetall(f"FILEINFO_1_{path}"), path
    assert db.hget("MIRROR_2", "lastSuccessfulSyncProtocol") == "2"
    assert "HTTP scan started" in daemon.ctl("logs", "m2").stdout
    forced = daemon.ctl("scan", "-http", "m1")
    assert forced.returncode == 0, forced.stderr
    assert db.hget("MIRROR_1", "lastSuccessfulSyncProtocol") == "2"
