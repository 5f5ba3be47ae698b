"""Seamless upgrade of the real daemon: the HTTP socket goes to a new process, no request lost."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.daemon import BIN, DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.servers import RedisServer, env_without_proxies

MAX_SECONDS = 15.0
MAX_REQUESTS = 1500  # 15 s of requests 10 ms apart: a slow hand-over must not outlast them
CLIENT = {"X-Forwarded-For": "100.96.2.10"}
MIRROR_URL = "http://127.0.0.31/a.txt"


class Upgradable(DaemonProcess):
    """A daemon started with a real pid file, in its own process group."""

    @property
    def pidfile(self) -> Path:
        return self.workdir / "m.pid"

    def start(self, wait_http: bool = True) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        env = env_without_proxies()
        env["TZ"] = "UTC"
        with open(self.workdir / "stdout", "ab") as output:
            self.process = subprocess.Popen(
                [str(BIN / "twistd"), "-n", "--pidfile", str(self.pidfile), "--logfile",
                 str(self.log_path), "mirrorbits", "--config", str(self.config_path),
                 *self.args],
                cwd=self.workdir, env=env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        listen = self.values["ListenAddress"]
        self.wait_started(lambda: accepts(*self.rpc), "the control channel")
        if listen.startswith("unix:"):
            self.wait_started(lambda: unix_status(listen[5:]) is not None, "HTTP")
        else:
            self.wait_started(lambda: accepts(*self.http), "HTTP")

    def wait_started(self, condition: Callable[[], object], what: str) -> None:
        """Wait for ``condition``; an exit or 20 s without it fail with the output."""
        assert self.process is not None
        deadline = time.monotonic() + 20
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = (self.workdir / "stdout").read_text(errors="replace")
                raise AssertionError(f"no {what} (exit {self.process.poll()}):\n{output}"
                                     f"{self.log()}")
            time.sleep(0.02)


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unix_status(path: str) -> int | None:
    """The status of GET /a.txt over the UNIX socket ``path`` (None if nothing answers)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"GET /a.txt HTTP/1.0\r\nHost: x\r\n\r\n")
            head = sock.recv(64)
    except OSError:
        return None
    return int(head.split()[1])


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def running(tmp_path: Path, redis_server: RedisServer, args: list[str],
            **values: str) -> Iterator[Upgradable]:
    """A started daemon; afterwards its successors are stopped too, whatever happened."""
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    process = Upgradable(workdir=tmp_path / "run",
                         values=base_config(repo, redis_server.address, **values), args=args)
    group: int | None = None
    try:
        process.start()
        assert process.process is not None
        group = process.process.pid  # its own process group, shared by its successors
        yield process
    finally:
        pid = read_pid(process.pidfile)
        if pid is not None and pid != group and alive(pid):
            os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                wait_until(lambda: not alive(pid), 15, "the new process to stop")
        process.stop()
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


@pytest.fixture
def daemon(tmp_path: Path, redis_server: RedisServer,
           redis_db: redis.Redis) -> Iterator[Upgradable]:
    with running(tmp_path, redis_server, ["--no-monitor"]) as process:
        serve_from_a_mirror(process, redis_db)
        yield process


def get(address: tuple[str, int]) -> tuple[int, str | None]:
    """GET /a.txt on a new connection: the status and the Location header."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", "/a.txt", headers=CLIENT)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def serve_from_a_mirror(daemon: Upgradable, redis_db: redis.Redis) -> None:
    """Index the repository and redirect /a.txt to one enabled mirror."""
    assert daemon.ctl("refresh").returncode == 0
    put_a_txt_on_a_mirror(daemon, redis_db)
    wait_until(lambda: get(daemon.http) == (302, MIRROR_URL), 10, "the redirect")


class Client(threading.Thread):
    """GET /a.txt on a new connection each time, until told to stop (bounded)."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.statuses: list[int] = []
        self.errors: list[str] = []
        self.stop_after: float | None = None  # monotonic time

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while len(self.statuses) + len(self.errors) < MAX_REQUESTS:
            now = time.monotonic()
            if now > deadline or (self.stop_after is not None and now > self.stop_after):
                return
            try:
                status, location = get(self.address)
            except (OSError, http.client.HTTPException) as err:
                self.errors.append(repr(err))
            else:
                self.statuses.append(status)
                if location != MIRROR_URL:
                    self.errors.append(f"{status} to {location}")
            time.sleep(0.01)


def upgrade_without_loss(daemon: Upgradable, trigger: Callable[[], None]) -> tuple[int, int]:
    """Run the client while ``trigger`` starts the upgrade; the new pid, the answers."""
    assert daemon.process is not None
    old = daemon.process
    client = Client(daemon.http)
    client.start()
    wait_until(lambda: len(client.statuses) >= 5 or client.errors, 10, "first answers")
    trigger()
    old.wait(15)  # the old process exits by itself
    exited_at = len(client.statuses)
    wait_until(lambda: read_pid(daemon.pidfile) not in (None, old.pid), 10,
               "the pid file to name the new process")
    client.stop_after = time.monotonic() + 0.5
    client.join(MAX_SECONDS + 5)
    assert not client.is_alive()
    assert client.errors == []
    assert set(client.statuses) == {302}
    assert len(client.statuses) > exited_at  # the new process answered too
    assert old.returncode == 0
    child = read_pid(daemon.pidfile)
    assert child is not None and alive(child)
    log = daemon.log()
    assert f"Spawned child {child}" in log
    assert "Asking parent to quit" in log
    assert log.count("starting up.") == 2
    # Both processes wrote the log in append mode: no line overwrote another.
    assert all(re.match(r"\d{4}-\d\d-\d\dT|\t", line) for line in log.splitlines()), log
    assert (daemon.pidfile.stat().st_mode & 0o777) == 0o644
    assert re.fullmatch(r"\d+", daemon.pidfile.read_text())
    return child, len(client.statuses)


def test_sigusr2_hands_over_without_losing_a_request(
        daemon: Upgradable, redis_db: redis.Redis) -> None:
    assert daemon.process is not None
    old_pid = daemon.process.pid
    child, answered = upgrade_without_loss(daemon, lambda: daemon.signal(signal.SIGUSR2))
    assert child != old_pid
    assert get(daemon.http) == (302, MIRROR_URL)
    listed = daemon.ctl("list")
    assert listed.returncode == 0, listed.stderr
    # Stopping the new process removes its pid file.
    os.kill(child, signal.SIGTERM)
    wait_until(lambda: not alive(child), 15, "the new process to stop")
    assert not daemon.pidfile.exists()
    # Every redirect was counted once: both processes flushed their statistics.
    assert int(redis_db.hget("STATS_MIRROR", "1") or 0) == 1 + answered + 1


def test_ctl_upgrade_answers_then_hands_over(daemon: Upgradable) -> None:
    results: list[subprocess.CompletedProcess[str]] = []

    def trigger() -> None:
        results.append(daemon.ctl("upgrade"))

    child, _ = upgrade_without_loss(daemon, trigger)
    assert (results[0].returncode, results[0].stdout, results[0].stderr) == (0, "", "")
    listed = daemon.ctl("list")
    assert listed.returncode == 0, listed.stderr
    again = daemon.ctl("upgrade")  # the new process can upgrade in its turn
    assert again.returncode == 0, again.stderr
    wait_until(lambda: not alive(child), 15, "the second process to quit")
    wait_until(lambda: read_pid(daemon.pidfile) not in (None, child), 10, "a third pid")
    assert daemon.ctl("list").returncode == 0


def test_a_configuration_the_new_process_would_refuse_is_said_and_nothing_spawned(
        daemon: Upgradable) -> None:
    """It used to spawn the new process anyway: 'mirrorbits-ctl upgrade' exited 0 and the
    log said only 'The new process exited with status 1' (the reason went to its stderr)."""
    daemon.config_path.write_text(daemon.config_path.read_text() + "CheckInterval: -1\n")
    failed = daemon.ctl("upgrade")
    reason = "the new process would not start: CheckInterval must be a number of minutes >= 0"
    assert failed.returncode == 1 and failed.stderr.startswith(reason), failed.stderr
    daemon.wait_log(f"Upgrade refused: {reason}")
    log = daemon.log()
    assert "Traceback" not in log and "Spawned child" not in log, log
    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.ctl("list").returncode == 0
    assert read_pid(daemon.pidfile) == daemon.process.pid


def test_monitoring_node_hands_over(tmp_path: Path, redis_server: RedisServer,
                                    redis_db: redis.Redis) -> None:
    with running(tmp_path, redis_server, []) as daemon:
        assert daemon.process is not None
        old = daemon.process
        wait_until(lambda: redis_db.sismember("FILES", "/a.txt"), 10, "the repository scan")
        daemon.signal(signal.SIGUSR2)
        assert old.wait(15) == 0
        wait_until(lambda: read_pid(daemon.pidfile) not in (None, old.pid), 10, "the new pid")
        assert daemon.ctl("list").returncode == 0
        log = daemon.log()
        assert "Traceback" not in log, log
        for problem in ("Upgrade failed", "Quitting failed", "upgrade aborted", "Closing "):
            assert problem not in log, log
        # The new process is the same cluster node: the parent was not seen as another node
        # joining (whose share of the mirrors nobody checked for 5 s after it left).
        wait_until(lambda: daemon.log().count("Cluster node ID: ") == 2, 10, "the new node ID")
        ids = re.findall(r"Cluster node ID: (\S+)", daemon.log())
        assert ids[0] == ids[1], ids
        time.sleep(1.5)  # a few announces of the new process
        assert "joined the cluster" not in daemon.log(), daemon.log()


def test_unix_socket_listener_is_handed_over(tmp_path: Path, redis_server: RedisServer,
                                             redis_db: redis.Redis) -> None:
    path = tmp_path / "http.sock"
    with running(tmp_path, redis_server, ["--no-monitor"], ListenAddress=f"unix:{path}") as daemon:
        assert daemon.process is not None
        old = daemon.process
        before = unix_status(str(path))
        assert before is not None
        daemon.signal(signal.SIGUSR2)
        assert old.wait(15) == 0
        wait_until(lambda: read_pid(daemon.pidfile) not in (None, old.pid), 10, "the new pid")
        assert path.exists()  # the old process left the socket file to its successor
        assert unix_status(str(path)) == before


def test_an_idle_keepalive_connection_does_not_hold_the_old_process(daemon: Upgradable) -> None:
    """A client keeping its connection open between requests sees it closed at the handover
    (clients then reconnect), instead of keeping the old process alive for the whole 5 s."""
    assert daemon.process is not None
    old = daemon.process
    held = http.client.HTTPConnection(*daemon.http, timeout=10)
    try:
        held.request("GET", "/a.txt", headers=CLIENT)
        answer = held.getresponse()
        answer.read()
        assert answer.status == 302
        started = time.monotonic()
        daemon.signal(signal.SIGUSR2)
        old.wait(15)
        took = time.monotonic() - started
        assert old.returncode == 0
        assert took < 4.5, f"the old process took {took:.1f} s to quit"
        assert "HTTP connections still open" not in daemon.log()
        assert held.sock is not None
        assert held.sock.recv(1) == b""  # closed by the old process, cleanly
    finally:
        held.close()
    assert get(daemon.http) == (302, MIRROR_URL)  # a new connection: the new process
