"""What an operator met walking README.md and docs/getting-started.md on real processes
(a daemon, an HTTP mirror and an ``rsync --daemon`` on loopback, a real Redis)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.daemon import DaemonProcess, base_config, repo_file
from tests.servers import RedisServer, RsyncServer, StaticHTTPServer

pytestmark = pytest.mark.integration


def wait_state(daemon: DaemonProcess, name: str, state: str, timeout: float) -> float:
    """Seconds until ``mirrorbits-ctl list`` shows ``name`` in ``state``."""
    start = time.monotonic()
    while True:
        listed = daemon.ctl("list").stdout.split("\n")
        if any(line.split()[:2] == [name, state] for line in listed if line.strip()):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{name} not {state} within {timeout} s:\n{daemon.log()}")
        time.sleep(0.2)


def test_a_mirror_kept_down_by_a_failed_rescan_is_up_right_after_the_operators_scan(
        tmp_path: Path, redis_server: RedisServer) -> None:
    # walked: the mirror's HTTP server came back before its rsync daemon, so the health check
    # kept it down ("answers again but its rescan failed"); once rsync was back, the
    # operator's `mirrorbits-ctl scan` succeeded but the mirror stayed down until its next
    # CheckInterval (43 s that time)
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    http = StaticHTTPServer(repo, host="127.0.0.41")
    rsync = RsyncServer(tmp_path / "rsyncd", {"pub": repo}, host="127.0.0.41")
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address, CheckInterval="1",
                                              LivenessInterval="1", ScanInterval="1000"))
    http.start()
    rsync.start()
    daemon.start()
    try:
        assert daemon.ctl("refresh").returncode == 0
        added = daemon.ctl("add", "-http", http.url, "-rsync", rsync.url("pub"), "m")
        assert added.returncode == 0, added.stderr
        scanned = daemon.ctl("scan", "-enable", "m")
        assert scanned.returncode == 0, scanned.stderr
        wait_state(daemon, "m", "up", 30)

        http.stop()
        rsync.stop()
        wait_state(daemon, "m", "down", 30)
        http.start()  # on the same port: back, but not its rsync
        daemon.wait_log("answers again but its rescan failed", timeout=30)
        rsync.start()
        scanned = daemon.ctl("scan", "m")
        assert scanned.returncode == 0, scanned.stderr
        assert wait_state(daemon, "m", "up", 10) < 10  # not the next CheckInterval's minute
    finally:
        daemon.stop()
        http.stop()
        rsync.stop()
