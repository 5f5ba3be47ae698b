"""The first answers after a start come from Redis, not from an empty cache.

The kernel queues connections from the moment the socket listens; the daemon accepts them
once its database is ready (at most a few seconds), so the very first requests already get
the mirrors. A Redis that stays down gets fallbacks and 503s after that wait, then recovers.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import time
from pathlib import Path

import redis

from tests.daemon import DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.servers import RedisServer, free_port

CLIENT = {"X-Forwarded-For": "100.96.2.10"}
MIRROR_URL = "http://127.0.0.31/a.txt"
FALLBACK_URL = "http://fallback.example.org/a.txt"
CONTENT = b"hello\n"
FALLBACKS = ("Fallbacks:\n    - URL: http://fallback.example.org/\n"
             "      CountryCode: fr\n      ContinentCode: eu\n")


def connect_as_soon_as_possible(address: tuple[str, int], timeout: float = 20.0
                                ) -> http.client.HTTPConnection:
    """A connection made the moment the port accepts (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection(*address, timeout=20)
        try:
            connection.connect()
            return connection
        except OSError:
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def send(connection: http.client.HTTPConnection, target: str) -> None:
    connection.request("GET", target, headers=CLIENT)


def answer(connection: http.client.HTTPConnection) -> tuple[int, str | None, str]:
    try:
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        return response.status, response.getheader("Location"), body
    finally:
        connection.close()


def get(address: tuple[str, int], target: str) -> tuple[int, str | None, str]:
    connection = http.client.HTTPConnection(*address, timeout=20)
    send(connection, target)
    return answer(connection)


def wait_until(condition: object, timeout: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_very_first_answers_after_a_start_use_redis(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", CONTENT, 1687249800)
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address), args=["--no-monitor"])
    daemon.start()
    try:  # a first run indexes the repository and registers a mirror holding /a.txt
        assert daemon.ctl("refresh").returncode == 0
        put_a_txt_on_a_mirror(daemon, redis_db)
        wait_until(lambda: get(daemon.http, "/a.txt")[:2] == (302, MIRROR_URL), 10, "redirect")
    finally:
        daemon.stop()
    for attempt in range(3):  # each start is a race with the Redis connection: run it thrice
        daemon.start(wait_http=False)
        try:
            first = connect_as_soon_as_possible(daemon.http)
            others = [http.client.HTTPConnection(*daemon.http, timeout=20) for _ in range(2)]
            send(first, "/a.txt")
            send(others[0], "/a.txt?mirrorlist")
            send(others[1], "/?mirrorstats")
            status, location, _ = answer(first)
            assert (status, location) == (302, MIRROR_URL), (attempt, status, location)
            status, _, page = answer(others[0])
            assert status == 200
            assert "madrid" in page and "No mirrors for this file" not in page
            assert hashlib.sha256(CONTENT).hexdigest() in page
            status, _, page = answer(others[1])
            assert status == 200 and "madrid" in page
            assert "not ready after" not in daemon.log()
        finally:
            daemon.stop()


def test_a_redis_down_at_start_gets_fallbacks_after_a_bounded_wait_then_recovers(
        tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", CONTENT, 1687249800)
    redis_port = free_port()
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, f"127.0.0.1:{redis_port}"),
                           args=["--no-monitor"], raw=FALLBACKS)
    server = RedisServer(workdir=tmp_path / "redis", port=redis_port)
    try:
        daemon.start(wait_http=False)
        started = time.monotonic()
        first = connect_as_soon_as_possible(daemon.http)
        send(first, "/a.txt")
        status, location, _ = answer(first)
        waited = time.monotonic() - started
        assert (status, location) == (302, FALLBACK_URL)
        assert waited < 10, waited
        daemon.wait_log("The database is not ready after 2s: serving anyway")
        for page in ("/?mirrorstats", "/a.txt?stats"):
            status, _, body = get(daemon.http, page)
            assert (status, body) == (503, "Service Unavailable\n"), page

        server.start()
        daemon.wait_log("Connected to redis master", timeout=20)
        wait_until(lambda: get(daemon.http, "/?mirrorstats")[0] == 200, 10, "mirrorstats")
        assert daemon.ctl("refresh").returncode == 0
        client = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        try:
            put_a_txt_on_a_mirror(daemon, client)
        finally:
            client.close()
        wait_until(lambda: get(daemon.http, "/a.txt")[:2] == (302, MIRROR_URL), 10,
                   "the mirror once Redis is up")
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        daemon.stop()
        server.stop()


def test_connections_made_during_the_wait_are_queued_not_refused(tmp_path: Path) -> None:
    """While the daemon waits for Redis its socket already listens: a client is not refused."""
    repo = tmp_path / "repo"
    repo.mkdir()
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, f"127.0.0.1:{free_port()}"),
                           args=["--no-monitor"], raw=FALLBACKS)
    try:
        daemon.start(wait_http=False)
        with socket.create_connection(daemon.http, timeout=1):  # accepted by the kernel
            pass
        status, location, _ = get(daemon.http, "/a.txt")
        assert status == 404 and location is None  # not in the repository; answered
    finally:
        daemon.stop()


def test_a_monitoring_start_logs_no_error_while_redis_connects(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """The repository scan at start waits for the database instead of failing on it."""
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", CONTENT, 1687249800)
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address))
    try:
        daemon.start()
        wait_until(lambda: redis_db.sismember("FILES", "/a.txt"), 20, "the repository scan")
        log = daemon.log()
        assert "#error]" not in log and "#critical]" not in log, log
    finally:
        daemon.stop()
