# mypy: disable-error-code="import-untyped"
"""Liveness in seconds (docs/freshness.md): a real daemon, a real redis-server and two real
HTTP mirrors on loopback; one mirror stops listening, and within seconds no redirect goes to
it; listening again, it is health-checked at once and back."""

from __future__ import annotations

import re
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import attrs
import pytest
import redis

from mirrorbits.health.liveness import REASON
from mirrorbits.store import keys
from tests.daemon import (
    DaemonProcess,
    add_mirrors_holding,
    base_config,
    last_redirect_to,
    redirect,
    repo_file,
)
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

INTERVAL = 2


@attrs.define
class CountingMirror:
    """A mirror's HTTP server that also counts connections closed without a request (the
    liveness probes)."""

    root: Path
    host: str
    port: int = 0
    silent: int = 0
    requests: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def handle(self) -> None:
                self.raw_requestline = b""
                self.handled = False
                super().handle()
                if not self.handled:
                    mirror.silent += 1

            def parse_request(self) -> bool:
                self.handled = True
                mirror.requests += 1
                return super().parse_request()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.port = self.port or free_port(self.host)
        server = ThreadingHTTPServer((self.host, self.port),
                                     partial(Handler, directory=str(self.root)))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def test_a_stopped_mirror_gets_no_user_within_seconds_and_returns_after_a_check(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    mirrors = []
    for name, host in (("north", "127.0.0.81"), ("south", "127.0.0.82")):
        root = tmp_path / name
        repo_file(root, "/a.txt", b"hello\n", 1687249800)
        mirrors.append(CountingMirror(root, host))
    north, south = mirrors
    for mirror in mirrors:
        mirror.start()
    values = base_config(repo, redis_server.address, CheckInterval="1", ScanInterval="1000",
                         LivenessInterval=str(INTERVAL))
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
    daemon.start()
    try:
        daemon.wait_log("Indexed 1 files", timeout=30)
        add_mirrors_holding(daemon, redis_db, [("north", north.url), ("south", south.url)],
                            {"/a.txt": 6})
        daemon.wait_log("north", timeout=30)
        deadline = time.monotonic() + 30
        seen: set[str] = set()
        while seen != {north.url + "a.txt", south.url + "a.txt"}:
            assert time.monotonic() < deadline, seen
            seen.add(redirect(daemon, "/a.txt")[1])

        # At most one probe per interval (the first may come at once).
        counted_from = north.silent
        time.sleep(5 * INTERVAL)
        probes = north.silent - counted_from
        assert 3 <= probes <= 6, probes

        north.stop()
        stopped = time.monotonic()
        gone_after = last_redirect_to(daemon, "/a.txt", north.url, stopped, quiet=3,
                                      rounds=2000) - stopped  # bounded: about 20 seconds
        print(f"\nlast redirect to the stopped mirror {gone_after:.2f} s after it stopped "
              f"(LivenessInterval {INTERVAL})")
        assert gone_after < 2 * INTERVAL + 2.5
        assert redis_db.hget(keys.mirror(1), "httpUp") == "0"
        assert redis_db.hget(keys.mirror(1), "httpDownReason") == REASON
        assert all(redirect(daemon, "/a.txt")[1].startswith(south.url) for _ in range(50))

        # Back: accepting connections again within a minute of its fall (a restart), it is
        # health-checked at once, not at its next check, and up again after a rescan.
        north.start()
        restarted = time.monotonic()
        deadline = restarted + 20
        while redis_db.hget(keys.mirror(1), "httpUp") != "1":
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.05)
        print(f"up again {time.monotonic() - restarted:.2f} s after it listened again")
        log = daemon.log()
    finally:
        daemon.stop()
        for mirror in mirrors:
            mirror.stop()
    assert log.count(f"north HTTP: down, {REASON}") == 1
    assert "south HTTP: down" not in log
    after_down = log.partition(f"north HTTP: down, {REASON}")[2]
    back = after_down.partition("north HTTP: accepts connections again; health check now")[2]
    assert "[north] Requesting file list via http" in back  # rescanned before it is up
    # its recovery is said, though this checker's last word was "Up!" before the probes
    # marked it down (it was logged at debug level only: down, then never up again)
    assert re.search(r"north +HTTP +Up!", back), back
    assert "Traceback" not in log
    assert "Starting factory" not in log  # no line per probe


def test_a_mirror_that_answered_a_verification_gets_no_liveness_probe(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """The file verification's HEAD proves what the TCP probe would: while the mirror
    answers them, no connection of its own is opened (the budget is the verification's)."""
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    root = tmp_path / "east"
    repo_file(root, "/a.txt", b"hello\n", 1687249800)
    east = CountingMirror(root, "127.0.0.83")
    east.start()
    values = base_config(repo, redis_server.address, CheckInterval="60", ScanInterval="1000",
                         LivenessInterval=str(INTERVAL), VerifyInterval="1")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
    daemon.start()
    try:
        daemon.wait_log("Indexed 1 files", timeout=30)
        add_mirrors_holding(daemon, redis_db, [("east", east.url)], {"/a.txt": 6})
        deadline = time.monotonic() + 30
        while redirect(daemon, "/a.txt") != (302, east.url + "a.txt"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for _ in range(10):  # downloaded: a popular file, verified every second
            redirect(daemon, "/a.txt")
        deadline = time.monotonic() + 40
        while east.requests < 5:  # verifications started (popularity read)
            assert time.monotonic() < deadline, east.requests
            time.sleep(0.2)
        silent, asked = east.silent, east.requests
        time.sleep(5 * INTERVAL)
        probes, verifications = east.silent - silent, east.requests - asked
        log = daemon.log()
    finally:
        daemon.stop()
        east.stop()
    print(f"\nin {5 * INTERVAL} s: {verifications} HEAD, {probes} bare connections")
    assert verifications >= 2 * INTERVAL  # one a second, fewer when answers are slow
    assert probes <= 1, probes  # else one every LivenessInterval: 5
    assert redis_db.hget(keys.mirror(1), "httpUp") == "1"
    assert "Traceback" not in log
