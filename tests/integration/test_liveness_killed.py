# mypy: disable-error-code="import-untyped"
"""A mirror whose server process is killed gets no user within a second (docs/freshness.md):
a real daemon holding one idle connection to each mirror, a real redis-server, and two real
``python -m http.server`` mirrors on loopback, one of them killed with SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

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
from tests.servers import RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.integration


def http_server(root: Path, host: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port(host)
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", host, "--directory", str(root),
         str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(host, port, timeout=20)
    return process, f"http://{host}:{port}/"


Servers = dict[str, tuple[subprocess.Popen[bytes], str]]


def wait_until_established(host: str, port: int, timeout: float) -> None:
    """Until a TCP connection to ``host:port`` is established (``/proc/net/tcp``): the
    daemon's held connection, without which the kill is found by probes instead."""
    address = "".join(f"{int(part):02X}" for part in reversed(host.split(".")))
    local = f"{address}:{port:04X}"
    deadline = time.monotonic() + timeout
    while True:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        if any(row[1] == local and row[3] == "01" for row in rows):
            return
        assert time.monotonic() < deadline, f"no connection held to {host}:{port}"
        time.sleep(0.1)


def east_and_west(tmp_path: Path, hosts: tuple[str, str]) -> tuple[Path, Servers]:
    """The repository with ``/a.txt``, and two mirrors serving it over HTTP on ``hosts``:
    ``east`` and ``west`` -> (process, URL)."""
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    servers = {}
    for name, host in zip(("east", "west"), hosts, strict=True):
        repo_file(tmp_path / name, "/a.txt", b"hello\n", 1687249800)
        servers[name] = http_server(tmp_path / name, host)
    return repo, servers


def test_a_killed_mirror_gets_no_user_within_a_second(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo, servers = east_and_west(tmp_path, ("127.0.0.83", "127.0.0.84"))
    (east, east_url), west_url = servers["east"], servers["west"][1]
    # The default interval: the probes alone would take up to two of them (6 s).
    values = base_config(repo, redis_server.address, CheckInterval="1", ScanInterval="1000",
                         LivenessInterval="3")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
    try:
        daemon.start()  # in the try: a daemon that cannot start leaves no mirror running
        daemon.wait_log("Indexed 1 files", timeout=30)
        add_mirrors_holding(daemon, redis_db, [("east", east_url), ("west", west_url)],
                            {"/a.txt": 6})
        deadline = time.monotonic() + 30
        seen: set[str] = set()
        while seen != {east_url + "a.txt", west_url + "a.txt"}:
            assert time.monotonic() < deadline, seen
            seen.add(redirect(daemon, "/a.txt")[1])
        time.sleep(2.5)  # the connections are held (opened at the next round, every second)
        east_host, east_port = east_url[len("http://"):-1].split(":")
        wait_until_established(east_host, int(east_port), 20)  # later on a loaded machine

        east.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        east.wait(10)
        gone_after = last_redirect_to(daemon, "/a.txt", east_url, killed, quiet=2,
                                      rounds=1000) - killed  # bounded: about 10 seconds
        print(f"\nlast redirect to the killed mirror {gone_after * 1000:.0f} ms after the kill "
              f"(LivenessInterval 3)")
        assert gone_after < 1.0
        assert redis_db.hget(keys.mirror(1), "httpUp") == "0"
        assert redis_db.hget(keys.mirror(1), "httpDownReason") == REASON
        assert redis_db.hget(keys.mirror(2), "httpUp") == "1"
        assert all(redirect(daemon, "/a.txt")[1].startswith(west_url) for _ in range(20))
        log = daemon.log()
    finally:
        daemon.stop()
        for process, _ in servers.values():
            if process.poll() is None:
                process.terminate()
                process.wait(10)
    assert log.count(f"east HTTP: down, {REASON}") == 1
    assert "its connection lost, a new one refused" in log
    assert "west HTTP: down" not in log
    assert "Traceback" not in log
