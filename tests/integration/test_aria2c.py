"""A real Metalink client through the redirector: Debian's ``aria2c`` reads ``?meta4`` from the
real daemon and downloads the file in pieces from several loopback mirrors (twisted.web static
servers, ranges), checking the whole file's SHA-256 from the Metalink.

A third mirror serves other bytes of the same size under the same name: when the Metalink
lists it, aria2c must not end with a file it calls complete and whose bytes are wrong.
The daemon and the mirrors are shared by the module's tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import redis

from tests.daemon import DaemonProcess, base_config, record_mirror_files, repo_file
from tests.integration.test_repository_watch import wait_until
from tests.servers import RedisServer, StaticHTTPServer, env_without_proxies, start_mirrors

MTIME = 1687249800  # 2023-06-20 08:30:00 UTC
MOD_TIME = "2023-06-20 08:30:00 +0000 UTC"
PATH = "/pool/big image.iso"
SIZE = 3 * 1024 * 1024 + 12345  # four 1 MiB pieces: every mirror gets some
GOOD = ("127.0.0.51", "127.0.0.52")
BAD = "127.0.0.53"


@attrs.frozen
class Setup:
    daemon: DaemonProcess
    db: redis.Redis
    data: bytes
    mirrors: dict[str, StaticHTTPServer]

    def url(self, query: str) -> str:
        host, port = self.daemon.http
        return f"http://{host}:{port}/pool/big%20image.iso{query}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory,
          redis_server: RedisServer) -> Iterator[Setup]:
    """One daemon and three mirrors for the module: the tests only download (the one that
    lists the bad mirror takes it out again)."""
    if shutil.which("aria2c") is None:
        pytest.skip("aria2c is not installed (apt package aria2)")
    tmp_path = tmp_path_factory.mktemp("aria2c")
    data = os.urandom(SIZE)
    repo_file(tmp_path / "repo", PATH, data, MTIME)
    mirrors: dict[str, StaticHTTPServer] = {}
    for host in (*GOOD, BAD):
        served = b"\0" * SIZE if host == BAD else data
        repo_file(tmp_path / host, PATH, served, MTIME)
        mirrors[host] = StaticHTTPServer(tmp_path / host, host,
                                         access_log=tmp_path / f"{host}.log")
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(tmp_path / "repo", redis_server.address),
                           args=["--no-monitor"])
    db = redis_server.client()
    db.flushall()
    try:
        start_mirrors(mirrors.values())
        daemon.start()
        refreshed = daemon.ctl("refresh")
        assert refreshed.returncode == 0, refreshed.stderr
        for host, mirror in mirrors.items():
            added = daemon.ctl("add", "-http", mirror.url, host.replace(".", "-"))
            assert added.returncode == 0, added.stderr
        for mirror_id, host in enumerate((*GOOD, BAD), start=1):
            if host != BAD:
                record_mirror_files(db, mirror_id, {PATH: SIZE}, MOD_TIME)
            assert daemon.ctl("enable", host.replace(".", "-")).returncode == 0
        yield Setup(daemon, db, data, mirrors)
    finally:
        daemon.stop()
        for mirror in mirrors.values():
            mirror.stop()
        db.close()


def aria2c(url: str, out: Path) -> subprocess.CompletedProcess[str]:
    """``aria2c`` following the Metalink at ``url`` in memory, into ``out``; its log at info."""
    out.mkdir()
    return subprocess.run(
        ["aria2c", "--no-conf", "--follow-metalink=mem", "--dir", str(out),
         "--split=4", "--min-split-size=1M", "--max-connection-per-server=1",
         "--max-tries=1", "--retry-wait=0", "--connect-timeout=5", "--timeout=10",
         "--console-log-level=warn", "--summary-interval=0", "--download-result=full",
         f"--log={out.parent / (out.name + '.log')}", "--log-level=info", url],
        capture_output=True, text=True, timeout=120, env=env_without_proxies())


def metalink(setup: Setup) -> str:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            setup.url("?meta4"), timeout=10) as answer:
        return str(answer.read().decode())


def served_by(mirror: StaticHTTPServer) -> int:
    """How many GETs of the file the mirror's access log shows."""
    assert mirror.access_log is not None
    return mirror.access_log.read_text().count('"GET /pool/big%20image.iso')


def served(setup: Setup) -> dict[str, int]:
    return {host: served_by(mirror) for host, mirror in setup.mirrors.items()}


@pytest.mark.parametrize("query", ["?meta4", ""], ids=["meta4", "accept"])
def test_aria2c_downloads_from_two_mirrors_and_checks_the_hash(setup: Setup, tmp_path: Path,
                                                               query: str) -> None:
    """``?meta4``, or the file's own URL: aria2c's ``Accept`` names the Metalink type."""
    before = served(setup)
    result = aria2c(setup.url(query), tmp_path / "out")
    after = served(setup)
    assert result.returncode == 0, result.stdout + result.stderr
    got = (tmp_path / "out" / "big image.iso").read_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(setup.data).digest()
    assert not (tmp_path / "out" / "big image.iso.aria2").exists()
    # both mirrors are listed; aria2c splits the file between them when it gets there in time
    # (a loaded machine may let one connection fetch it all)
    assert sum(after[host] - before[host] for host in GOOD) >= 1, result.stdout
    assert after[BAD] == before[BAD]
    log = (tmp_path / "out.log").read_text()
    assert "Verification finished successfully" in log, log[-3000:]  # the Metalink's hash


def test_aria2c_never_accepts_the_wrong_bytes(setup: Setup, tmp_path: Path) -> None:
    before = served_by(setup.mirrors[BAD])
    # the mirror serving other bytes now holds the file, as far as we know (once the daemon
    # heard it: the earlier tests' answers are in its cache)
    record_mirror_files(setup.db, 3, {PATH: len(setup.data)}, MOD_TIME)
    try:
        wait_until(lambda: BAD in metalink(setup), 10)
        # a loaded machine may let the good mirrors' connections fetch every piece before the
        # bad one is asked: try again (at most three downloads) until it was
        for attempt in range(3):
            out = tmp_path / f"out{attempt}"
            result = aria2c(setup.url("?meta4"), out)
            if served_by(setup.mirrors[BAD]) > before:
                break
    finally:  # for the other tests of the module
        setup.db.srem(f"FILEMIRRORS_{PATH}", 3)
        setup.db.delete(f"FILEINFO_3_{PATH}")
        setup.db.publish("_mirrorbits_mirror_file_update", f"3 {PATH}")
        wait_until(lambda: BAD not in metalink(setup), 10)
    target = out / "big image.iso"
    assert served_by(setup.mirrors[BAD]) > before, result.stdout
    if result.returncode == 0:  # it may have fetched every piece again elsewhere
        assert target.read_bytes() == setup.data
    else:  # 32: checksum validation failed; the download stays incomplete (control file)
        assert result.returncode == 32, result.stdout + result.stderr
        assert "checksum" in (result.stdout + result.stderr).lower()
        assert (out / "big image.iso.aria2").exists()
