"""Upgrades under load: keep-alive clients busy through the handover never see an error.

wrk keeps 50 keep-alive connections busy while the daemon upgrades twice; a Python client
sends its next request on a reused connection at the moment the old process starts draining.
Each counts every failed, reset or refused request: there must be none.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import redis

from bench.redirect.loadgen import LUA_SCRIPT
from tests.integration.test_upgrade import (
    CLIENT,
    MIRROR_URL,
    Upgradable,
    read_pid,
    running,
    serve_from_a_mirror,
    wait_until,
)
from tests.servers import RedisServer

CONNECTIONS = 50
WRK_LIMIT = 25  # seconds wrk runs at most; it is stopped once the upgrades are done
MAX_SECONDS = 15.0
MAX_REQUESTS = 20_000  # per client; a busy one sends about 1,000 a second


@pytest.fixture
def daemon(tmp_path: Path, redis_server: RedisServer,
           redis_db: redis.Redis) -> Iterator[Upgradable]:
    with running(tmp_path, redis_server, ["--no-monitor"]) as process:
        serve_from_a_mirror(process, redis_db)
        yield process


@attrs.frozen
class WrkResult:
    """What wrk reports: answers, socket errors by kind, statuses seen by the Lua script."""

    requests: int
    socket_errors: dict[str, int]
    non_2xx_3xx: int
    ok_302: int
    other_status: int
    bad_location: int
    first_bad: str


def parse_wrk(output: str) -> WrkResult:
    """wrk's summary, plus the ``BENCH_RESULT`` line of ``bench/redirect/rotate.lua``."""
    requests = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_3xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    script = re.search(r"^BENCH_RESULT (.*)$", output, re.MULTILINE)
    assert requests is not None and script is not None, output
    counts = json.loads(script[1])
    kinds = ("connect", "read", "write", "timeout")
    return WrkResult(
        requests=int(requests[1]),
        socket_errors=dict(zip(kinds, map(int, errors.groups()), strict=True)) if errors
        else dict.fromkeys(kinds, 0),
        non_2xx_3xx=int(non_3xx[1]) if non_3xx else 0,
        ok_302=counts["ok_302"], other_status=counts["other_status"],
        bad_location=counts["bad_location"], first_bad=counts["first_bad"])


def start_wrk(address: tuple[str, int], workdir: Path) -> subprocess.Popen[str]:
    """wrk with keep-alive (its default) on GET /a.txt from one client address."""
    binary = shutil.which("wrk")
    if binary is None:
        pytest.skip("wrk is not installed (.ci/setup installs it)")
    paths, ips = workdir / "paths", workdir / "ips"
    paths.write_text("/a.txt\n")
    ips.write_text(CLIENT["X-Forwarded-For"] + "\n")
    return subprocess.Popen(
        [binary, "-t2", "-c", str(CONNECTIONS), "-d", f"{WRK_LIMIT}s", "--timeout", "5s",
         "-s", str(LUA_SCRIPT), f"http://{address[0]}:{address[1]}/a.txt",
         "--", str(paths), str(ips), "^" + re.escape(MIRROR_URL).replace("\\", "%") + "$"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def exited(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie (a successor's parent may not reap it at once)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def upgrade_and_wait(daemon: Upgradable, how: str) -> None:
    """Upgrade the process named by the pid file; return once its successor took over."""
    old = read_pid(daemon.pidfile)
    assert old is not None
    if how == "ctl":
        done = daemon.ctl("upgrade")
        assert done.returncode == 0, done.stderr
    else:
        os.kill(old, signal.SIGUSR2)
    wait_until(lambda: exited(old), 15, f"process {old} to quit")
    wait_until(lambda: read_pid(daemon.pidfile) not in (None, old), 10, "the new pid")


def test_wrk_through_two_upgrades_sees_no_error(
        daemon: Upgradable, redis_db: redis.Redis, tmp_path: Path) -> None:
    """50 busy keep-alive connections through `mirrorbits-ctl upgrade` then SIGUSR2: every
    request answered with the redirect, none failed, reset or refused, each counted once."""
    wrk = start_wrk(daemon.http, tmp_path)
    try:
        time.sleep(1.0)
        upgrade_and_wait(daemon, "ctl")
        upgrade_and_wait(daemon, "signal")
        time.sleep(0.5)  # the last process serves alone for a moment
    finally:
        wrk.send_signal(signal.SIGINT)  # wrk stops and prints its summary
        output, _ = wrk.communicate(timeout=30)
    result = parse_wrk(output)
    assert result.requests > 1000, output
    assert result.socket_errors == dict.fromkeys(result.socket_errors, 0), output
    assert result.non_2xx_3xx == 0, output
    assert (result.ok_302, result.other_status, result.bad_location) == (
        result.requests, 0, 0), (result.first_bad, output)
    # Every answer counted once: the processes that quit flushed their statistics, and the
    # last one does at its stop. wrk may stop with one request per connection unread.
    last = read_pid(daemon.pidfile)
    assert last is not None
    os.kill(last, signal.SIGTERM)
    wait_until(lambda: exited(last), 15, "the last process to stop")
    counted = int(redis_db.hget("STATS_MIRROR", "1") or 0) - 1  # the fixture's redirect
    assert result.requests <= counted <= result.requests + CONNECTIONS
    log = daemon.log()
    assert "Traceback" not in log, log
    assert "Closing " not in log, log  # no connection was left for the drain timeout


class KeepAliveClient(threading.Thread):
    """GET /a.txt again and again on one reused connection (bounded in count and time);
    http.client opens a new one only after an answer that says ``Connection: close``."""

    def __init__(self, address: tuple[str, int], pause: float) -> None:
        super().__init__(daemon=True)
        self.connection = http.client.HTTPConnection(*address, timeout=10)
        self.pause = pause  # seconds between an answer and the next request
        self.statuses: list[int] = []
        self.closes = 0  # answers that ended their connection cleanly
        self.errors: list[str] = []
        self.stop_after: float | None = None  # monotonic time

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        try:
            while len(self.statuses) < MAX_REQUESTS and not self.errors:
                now = time.monotonic()
                if now > deadline or (self.stop_after is not None and now > self.stop_after):
                    return
                self._get()
                time.sleep(self.pause)
        finally:
            self.connection.close()

    def _get(self) -> None:
        try:
            self.connection.request("GET", "/a.txt", headers=CLIENT)
            response = self.connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as err:
            self.errors.append(f"request {len(self.statuses) + 1}: {err!r}")
            return
        self.statuses.append(response.status)
        if response.getheader("Location") != MIRROR_URL:
            self.errors.append(f"{response.status} to {response.getheader('Location')}")
        if response.getheader("Connection", "").lower() == "close":
            self.closes += 1


def test_keepalive_requests_at_the_handover_are_answered(daemon: Upgradable) -> None:
    """Clients reusing their connection as the old process starts draining: one sends its
    next request at once after each answer, one after a pause. Each request is answered,
    and the old process ends each connection with a "Connection: close" answer."""
    assert daemon.process is not None
    old = daemon.process
    clients = [KeepAliveClient(daemon.http, pause) for pause in (0.0, 0.002, 0.1)]
    for client in clients:
        client.start()
    wait_until(lambda: all(len(c.statuses) >= 3 or c.errors for c in clients), 10,
               "first answers")
    daemon.signal(signal.SIGUSR2)
    assert old.wait(15) == 0
    wait_until(lambda: read_pid(daemon.pidfile) not in (None, old.pid), 10, "the new pid")
    counts = [len(client.statuses) for client in clients]
    for client in clients:
        client.stop_after = time.monotonic() + 0.5
    for client in clients:
        client.join(MAX_SECONDS + 5)
        assert not client.is_alive()
    for client, count in zip(clients, counts, strict=True):
        assert client.errors == [], (client.pause, client.errors)
        assert set(client.statuses) == {302}
        assert client.closes >= 1, client.pause  # the old process ended it cleanly...
        assert len(client.statuses) > count  # ...and the client went on with the new one
    assert "Closing " not in daemon.log()
