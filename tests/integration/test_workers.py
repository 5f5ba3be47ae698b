"""``Workers: 2``: the real daemon with two HTTP worker processes (its children, found in
/proc), on a real redis-server: each serves, a killed one is replaced while the port keeps
answering, downloads are counted once, signals and the upgrade reach them, and the
once-per-node work (scans, health checks) is not done by them."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import http.server
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mirrorbits.stats import FLUSH_INTERVAL
from mirrorbits.store import keys
from tests.daemon import record_mirror_files
from tests.integration.test_upgrade import (
    CLIENT,
    MIRROR_URL,
    Upgradable,
    alive,
    read_pid,
    running,
    serve_from_a_mirror,
    wait_until,
)
from tests.servers import RedisServer


def worker_pids(main: int) -> list[int]:
    """The pids of the HTTP workers whose parent is ``main`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == main and fields[0] != "Z" and b"mirrorbits.workers" in cmdline:
            found.append(int(entry))
    return sorted(found)


def exists(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def main_pid(daemon: Upgradable) -> int:
    assert daemon.process is not None
    return daemon.process.pid


def two_workers(daemon: Upgradable) -> list[int]:
    wait_until(lambda: len(worker_pids(main_pid(daemon))) == 2, 20, "two workers")
    return worker_pids(main_pid(daemon))


def serving(daemon: Upgradable) -> Upgradable:
    """``daemon`` once both workers serve (the port accepts from the start: a busy machine
    may take seconds to start a worker, and requests would wait meanwhile)."""
    daemon.wait_log("HTTP served by 2 worker processes", timeout=40)
    return daemon


def status(address: tuple[str, int], timeout: float = 10,
           headers: dict[str, str] | None = None) -> tuple[int, str | None, bytes]:
    """GET /a.txt on a new connection: the status, the Location header and the body."""
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request("GET", "/a.txt", headers=headers or CLIENT)
        response = connection.getresponse()
        return response.status, response.getheader("Location"), response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """``pid`` frozen (SIGSTOP): it accepts nothing until the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def answers_alone(daemon: Upgradable, serving: int, frozen: list[int], count: int) -> None:
    """With every worker of ``frozen`` stopped, ``count`` requests are answered (by
    ``serving``, the only one left to accept)."""
    assert alive(serving)
    with contextlib.ExitStack() as stack:
        for pid in frozen:
            stack.enter_context(stopped(pid))
        for _ in range(count):
            assert status(daemon.http)[:2] == (302, MIRROR_URL)


@pytest.fixture
def workers(tmp_path: Path, redis_server: RedisServer,
            redis_db: redis.Redis) -> Iterator[Upgradable]:
    with running(tmp_path, redis_server, ["--no-monitor"], Workers="2",
                 LogDir=str(tmp_path)) as process:
        serve_from_a_mirror(serving(process), redis_db)
        yield process


def test_each_worker_serves_and_a_killed_one_is_replaced(workers: Upgradable) -> None:
    first, second = two_workers(workers)
    answers_alone(workers, first, [second], 10)
    answers_alone(workers, second, [first], 10)
    # The daemon itself does not accept: with both workers frozen nothing answers.
    with stopped(first), stopped(second), pytest.raises(TimeoutError):
        status(workers.http, timeout=1)

    os.kill(first, signal.SIGKILL)
    wait_until(lambda: first not in worker_pids(main_pid(workers)), 5, "the killed worker gone")
    failures = []
    deadline = time.monotonic() + 3
    for _ in range(300):
        if time.monotonic() > deadline:
            break
        try:
            answer = status(workers.http, timeout=5)[:2]
        except OSError as err:
            failures.append(repr(err))
        else:
            if answer != (302, MIRROR_URL):
                failures.append(repr(answer))
    assert failures == []
    started = time.monotonic()
    wait_until(lambda: len(worker_pids(main_pid(workers))) == 2, 5, "a new worker")
    assert time.monotonic() - started < 5
    replacement = next(pid for pid in worker_pids(main_pid(workers)) if pid != second)
    workers.wait_log(f"HTTP worker {first} was killed by SIGKILL: starting another in")
    workers.wait_log(f"HTTP worker {replacement} serves")
    answers_alone(workers, replacement, [second], 5)


def test_the_files_messages_go_to_the_workers_alone(workers: Upgradable,
                                                    redis_db: redis.Redis) -> None:
    """The workers' caches read the files' messages; the daemon itself, which keeps no
    cache, is not subscribed to them (an invalidation storm would cost it as much CPU as a
    worker, for nothing), but still to the mirrors' and the cluster's."""
    two_workers(workers)
    expected = {keys.CHANNEL_FILE_UPDATE: 2, keys.CHANNEL_MIRROR_FILE_UPDATE: 2,
                keys.CHANNEL_MIRROR_UPDATE: 3, keys.CHANNEL_CLUSTER: 3}

    def subscribers() -> dict[str, int]:
        return {str(channel): int(count)
                for channel, count in redis_db.pubsub_numsub(*keys.ALL_CHANNELS)}

    wait_until(lambda: subscribers() == expected, 20, "the workers subscribed")
    time.sleep(0.5)
    assert subscribers() == expected


def today_downloads(db: redis.Redis) -> tuple[int, int]:
    """Today's downloads of /a.txt, and of mirror 1, in Redis."""
    day = datetime.datetime.now(datetime.UTC).strftime("%Y_%m_%d")
    return (int(db.hget(f"STATS_FILE_{day}", "/a.txt") or 0),
            int(db.hget(f"STATS_MIRROR_{day}", "1") or 0))


def test_downloads_are_counted_once_and_sigterm_stops_every_worker(
        workers: Upgradable, redis_db: redis.Redis) -> None:
    first, second = two_workers(workers)
    time.sleep(FLUSH_INTERVAL + 0.7)  # the redirect's first answers are flushed
    before, _ = today_downloads(redis_db)
    assert today_downloads(redis_db) == (before, before)
    answers_alone(workers, first, [second], 15)
    answers_alone(workers, second, [first], 15)
    expected = (before + 30, before + 30)
    wait_until(lambda: today_downloads(redis_db) == expected, 10, "30 downloads counted")
    time.sleep(2 * FLUSH_INTERVAL + 0.2)  # two more flushes: nothing counted twice
    assert today_downloads(redis_db) == expected
    mirrorstats = http.client.HTTPConnection(*workers.http, timeout=10)
    mirrorstats.request("GET", "/?mirrorstats")
    body = mirrorstats.getresponse().read().decode()
    mirrorstats.close()
    assert f"{before + 30} downloads" in body, body  # the sum of both workers' counts

    for _ in range(7):  # counted in memory, flushed when the workers stop
        assert status(workers.http)[0] == 302
    assert workers.process is not None
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(20) in (0, -signal.SIGTERM)  # twistd re-raises SIGTERM
    assert not exists(first) and not exists(second)
    assert today_downloads(redis_db) == (before + 37, before + 37)
    lines = (Path(workers.values["LogDir"]) / "downloads.log").read_text().splitlines()
    assert sum("/a.txt" in line for line in lines) == before + 37
    stop = workers.log().partition("Received SIGTERM")[2]
    assert "Main loop terminated." in stop  # the daemon's; each worker's is a debug line
    assert "worker" not in stop, stop


def test_sighup_and_ctl_reload_reach_every_worker(workers: Upgradable) -> None:
    first, second = two_workers(workers)
    good = workers.config_path.read_text()
    workers.config_path.write_text(good + "OutputMode: json\nGzipp: yes\n")
    workers.signal(signal.SIGHUP)
    for pid in (first, second):
        workers.wait_log(f"worker {pid}: SIGHUP Received: Reloading configuration...")
    assert workers.log().count("unknown configuration key 'Gzipp'") == 1  # the daemon's only
    for frozen in (second, first):
        with stopped(frozen):
            code, _, body = status(workers.http)
            assert code == 200 and body.startswith(b"{"), body
    workers.config_path.write_text(good)
    assert workers.ctl("reload").returncode == 0
    wait_until(lambda: workers.log().count("Reloading configuration") == 6, 10,
               "the second reload in every process")
    answers_alone(workers, first, [second], 2)
    answers_alone(workers, second, [first], 2)

    workers.signal(signal.SIGUSR1)
    for pid in (first, second):
        workers.wait_log(f"worker {pid}: SIGUSR1 Received: Re-opening logs...")
    # The upgrade's signals are the daemon's (systemctl kill sends them to every process).
    os.kill(first, signal.SIGUSR2)
    os.kill(first, signal.SIGQUIT)
    answers_alone(workers, first, [second], 2)
    assert worker_pids(main_pid(workers)) == [first, second]


class SlowClient(threading.Thread):
    """GET /a.txt on a new connection every 20 ms until told to stop (at most 60 s)."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.statuses: list[int] = []
        self.errors: list[str] = []
        self.stop_after: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < min(deadline, self.stop_after or deadline):
            try:
                code, location, _ = status(self.address)
            except (OSError, http.client.HTTPException) as err:
                self.errors.append(repr(err))
            else:
                self.statuses.append(code)
                if location != MIRROR_URL:
                    self.errors.append(f"{code} to {location}")
            time.sleep(0.02)


def test_upgrade_hands_over_to_the_new_process_workers(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    with running(tmp_path, redis_server, ["--no-monitor"], Workers="2") as daemon:
        serve_from_a_mirror(serving(daemon), redis_db)
        assert daemon.process is not None
        old_main, old = daemon.process, two_workers(daemon)
        client = SlowClient(daemon.http)
        client.start()
        wait_until(lambda: len(client.statuses) >= 5 or client.errors, 10, "first answers")
        daemon.signal(signal.SIGUSR2)
        assert old_main.wait(40) == 0  # it quits once the new process' workers serve
        assert not any(exists(pid) for pid in old)  # its workers drained and stopped first
        exited_at = len(client.statuses)
        wait_until(lambda: read_pid(daemon.pidfile) not in (None, old_main.pid), 10,
                   "the pid file to name the new process")
        child = read_pid(daemon.pidfile)
        assert child is not None
        client.stop_after = time.monotonic() + 0.5
        client.join(70)
        assert client.errors == []
        assert len(client.statuses) > exited_at  # the new process' workers answered
        new = worker_pids(child)
        assert len(new) == 2 and not set(new) & set(old)
        answers_alone(daemon, new[0], [new[1]], 3)
        answers_alone(daemon, new[1], [new[0]], 3)
        log = daemon.log()
        assert "Asking parent to quit" in log
        # The old node says once that it hands over; its workers' stops (each said "(TCP
        # Port N Closed)" and "Main loop terminated.") are debug lines.
        assert log.count("SIGQUIT Received: handing over to the new process") == 1
        handover = log[log.index("SIGQUIT Received"):]
        assert not [line for line in handover.splitlines()
                    if any(f"worker {pid}:" in line for pid in old)], handover


class CountingMirror(http.server.BaseHTTPRequestHandler):
    """A mirror holding /a.txt (6 bytes) that counts the requests it gets."""

    requests: list[str] = []

    def do_HEAD(self) -> None:
        self.requests.append(f"HEAD {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"hello\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_scans_and_health_checks_run_in_the_daemon_only(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    CountingMirror.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.52", 0), CountingMirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.52:{server.server_address[1]}/"
    try:
        with running(tmp_path, redis_server, [], Workers="2", CheckInterval="1") as daemon:
            pids = two_workers(serving(daemon))
            assert daemon.ctl("refresh").returncode == 0
            assert daemon.ctl("add", "-http", url, "counted").returncode == 0
            record_mirror_files(redis_db, 1, {"/a.txt": 6}, "2023-06-20 08:30:00 +0000 UTC")
            redis_db.sadd("HANDLEDFILES_1", "/a.txt")
            assert daemon.ctl("enable", "counted").returncode == 0
            wait_until(lambda: CountingMirror.requests, 10, "a health check")
            time.sleep(3)  # every process would have checked by now (1 s rounds)
            checks = [r for r in CountingMirror.requests if r.startswith("HEAD")]
            assert checks == ["HEAD /a.txt"]  # once per CheckInterval
            # an HTTP-only mirror is scanned through its index page: once, by the daemon
            assert [r for r in CountingMirror.requests if r.startswith("GET")] in ([], ["GET /"])
            log = daemon.log()
            scanning = [line for line in log.splitlines() if "Scanning the filesystem" in line]
            assert scanning and all("[mirrorbits.scan.local#" in line for line in scanning)
            assert "Cluster node ID" in log
            for pid in pids:
                assert not re.search(rf"worker {pid}: .*(Scanning|Cluster|Control)", log), log
    finally:
        server.shutdown()
        server.server_close()


def test_a_worker_stops_when_the_daemon_is_killed(workers: Upgradable) -> None:
    pids = two_workers(workers)
    assert workers.process is not None
    workers.process.kill()
    workers.process.wait(5)
    wait_until(lambda: not any(exists(pid) for pid in pids), 10, "orphaned workers to exit")
