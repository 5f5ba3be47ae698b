"""The real daemon under a bounded load while its Redis fails in the usual ways.

One daemon, one ``redis-server`` (real processes on loopback), a mirror holding the
repository's files and a fallback. While threads download on keep-alive connections:

* Redis is stopped for three seconds, then restarted with its data;
* Redis answers nothing for two seconds (``DEBUG SLEEP``);
* Redis is restarted empty (its data lost): the mirrors it no longer knows stop receiving
  users within seconds — nothing stale stays in the daemon's memory.

With its background services running (health checks, liveness, verification, scans) against
two mirrors, Redis is killed while each of them waits on it and restarted, made read-only,
then killed while the daemon stops: each service says so in one line at most per outage,
never with a traceback.

No answer may be a 5xx, scans must work again after each fault, and every download the load
received must be counted exactly once in the Redis that kept its data.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import redis

from tests.daemon import DaemonProcess, base_config, repo_file
from tests.integration.test_daemon_redis import (
    Load,
    counted,
    get_location,
    hold_files,
    make_repository,
    wait_until,
)
from tests.servers import RedisServer, free_port, http_tree

pytestmark = pytest.mark.integration

FALLBACK = "http://127.0.0.44/fallback/"


@attrs.define
class Site:
    repo: Path
    redis: RedisServer
    madrid_url: str
    daemon: DaemonProcess

    def db(self) -> redis.Redis:
        return self.redis.client()

    def restart_redis(self, keep_data: bool, down_for: float) -> None:
        """Stop Redis (after ``SAVE`` when its data must survive), wait, start it again."""
        dump = self.redis.workdir / "dump.rdb"
        dump.unlink(missing_ok=True)
        if keep_data:
            with self.db() as db:
                db.save()
        self.redis.stop()
        time.sleep(down_for)
        self.redis.start()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    server = RedisServer(workdir=tmp_path / "redis", extra_args=["--enable-debug-command", "yes"])
    server.start()
    repo = tmp_path / "repo"
    make_repository(repo)
    mirrors = contextlib.ExitStack()
    madrid_url = mirrors.enter_context(http_tree(repo, "127.0.0.43"))
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(repo, server.address),
                           raw=f"Fallbacks:\n  - URL: {FALLBACK}\n")
    try:
        daemon.start()
        with server.client() as db:
            assert daemon.ctl("refresh").returncode == 0
            assert daemon.ctl("add", "-http", madrid_url, "madrid").returncode == 0
            hold_files(db, 1)
            assert daemon.ctl("enable", "madrid").returncode == 0
            wait_until(lambda: get_location(daemon) == (302, madrid_url + "a.txt"), 20,
                       "redirect to madrid", daemon)
            # and its first health check and scan are over: the faults hit a daemon at rest
            # (on a loaded machine they came seconds later, during the first fault)
            daemon.wait_log("[madrid] Indexed ", timeout=30)
        yield Site(repo, server, madrid_url, daemon)
    finally:
        daemon.stop()
        mirrors.close()
        server.stop()


def assert_no_server_error(load: Load) -> None:
    assert load.failures == [], load.failures[:5]
    assert not [status for status in load.statuses if status != 302], dict(load.statuses)
    assert load.redirects > 300  # the load ran throughout


def test_stopped_and_slow_redis_lose_no_request_and_no_download(site: Site) -> None:
    daemon = site.daemon
    load = Load(*daemon.http)
    load.start()
    try:
        time.sleep(1.5)
        site.restart_redis(keep_data=True, down_for=3.0)
        daemon.wait_log(f"Connected to redis master {site.redis.address}", timeout=15)
        time.sleep(1.5)
        with site.db() as db:
            db.execute_command("DEBUG", "SLEEP", "2")
        time.sleep(1.5)
    finally:
        load.stop()
    assert_no_server_error(load)
    # the daemon writes again: a new file is indexed, and every download arrives once
    repo_file(site.repo, "/b.txt", b"bee\n", 1687249800)
    refreshed = daemon.ctl("refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    code = daemon.stop()
    assert code in (0, -15), daemon.log()
    # a request that found neither the cache nor Redis went to the fallback, counted as
    # mirror 0 (as the reference counts fallbacks)
    by_mirror: Counter[str] = Counter()
    for location, n in load.locations.items():
        if n:
            by_mirror["0" if location.startswith(FALLBACK) else "1"] += n
    with site.db() as db:
        assert db.sismember("FILES", "/b.txt")
        assert counted(db) == {"STATS_TOTAL": load.redirects, "STATS_FILE": load.redirects,
                               "STATS_MIRROR": dict(by_mirror)}, daemon.log()
    assert "Traceback" not in daemon.log()


def test_redis_restarted_empty_leaves_no_stale_mirror_in_memory(site: Site) -> None:
    daemon = site.daemon
    load = Load(*daemon.http)
    load.start()
    try:
        time.sleep(1.0)
        site.restart_redis(keep_data=False, down_for=1.0)
        daemon.wait_log(f"Connected to redis master {site.redis.address}", timeout=15)
        # madrid is unknown to the new Redis: within seconds nobody is sent there
        wait_until(lambda: not get_location(daemon)[1].startswith(site.madrid_url), 10,
                   "madrid forgotten", daemon)
        time.sleep(1.0)
        madrid_before = sum(n for location, n in load.locations.items()
                            if location.startswith(site.madrid_url))
        time.sleep(1.0)
        madrid_after = sum(n for location, n in load.locations.items()
                           if location.startswith(site.madrid_url))
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert madrid_after == madrid_before  # nothing stale served for the last second
    assert set(load.statuses) == {302}, dict(load.statuses)  # madrid, then the fallback
    assert any(location.startswith(FALLBACK) for location in load.locations)
    # the repository can be indexed again, and the mirror added back
    assert daemon.ctl("refresh").returncode == 0
    with site.db() as db:
        assert db.scard("FILES") > 0
    assert "Traceback" not in daemon.log()


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[Site]:
    """Two mirrors, every background service on its shortest interval."""
    server = RedisServer(workdir=tmp_path / "redis", extra_args=["--enable-debug-command", "yes"])
    server.start()
    repo = tmp_path / "repo"
    make_repository(repo)
    mirrors = contextlib.ExitStack()
    madrid_url = mirrors.enter_context(http_tree(repo, "127.0.0.43"))
    lisbon_url = mirrors.enter_context(http_tree(repo, "127.0.0.45"))
    values = base_config(repo, server.address, CheckInterval="1", LivenessInterval="1",
                         VerifyInterval="1", ScanInterval="1", RepositoryScanInterval="1")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values,
                           raw=f"Fallbacks:\n  - URL: {FALLBACK}\n")
    try:
        daemon.start()
        assert daemon.ctl("refresh").returncode == 0
        for name, url in (("madrid", madrid_url), ("lisbon", lisbon_url)):
            assert daemon.ctl("add", "-http", url, name).returncode == 0
            assert daemon.ctl("scan", name).returncode == 0
            assert daemon.ctl("enable", name).returncode == 0
        wait_until(lambda: get_location(daemon)[1].startswith((madrid_url, lisbon_url)), 20,
                   "redirect to a mirror", daemon)
        yield Site(repo, server, madrid_url, daemon)
    finally:
        daemon.stop()
        mirrors.close()
        server.stop()


def kill_while_asleep(server: RedisServer, meanwhile: Callable[[], None] = lambda: None) -> None:
    """Make Redis sleep for two seconds (every service's next command waits for an answer),
    do ``meanwhile``, then kill Redis: each service loses a command in flight."""
    def sleep() -> None:
        with contextlib.suppress(redis.RedisError), server.client() as db:
            db.execute_command("DEBUG", "SLEEP", "2")

    sleeper = threading.Thread(target=sleep, daemon=True)
    sleeper.start()
    time.sleep(1.5)
    meanwhile()
    assert server.process is not None
    server.process.kill()
    server.process.wait(10)
    server.process = None
    sleeper.join(10)


def answers_during(daemon: DaemonProcess, seconds: float) -> set[int]:
    """The statuses of requests made every 0.1 s for ``seconds``."""
    statuses = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses.add(get_location(daemon)[0])
        time.sleep(0.1)
    return statuses


def test_background_services_report_redis_faults_in_one_line(monitored: Site) -> None:
    site, daemon = monitored, monitored.daemon
    time.sleep(2.5)  # a few rounds of every service
    # (a) killed while every service waits for an answer, then restarted with its data
    with site.db() as db:
        db.save()
    kill_while_asleep(site.redis)
    down = answers_during(daemon, 3.0)
    site.redis.start()
    daemon.wait_log(f"Connected to redis master {site.redis.address}", timeout=15)
    time.sleep(2.5)
    # (b) read-only: a replica of an address where nothing listens
    with site.db() as db:
        db.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    read_only = answers_during(daemon, 4.0)
    with site.db() as db:
        db.execute_command("REPLICAOF", "NO", "ONE")
    wait_until(lambda: get_location(daemon)[0] == 302, 15, "served again", daemon)
    time.sleep(2.5)
    recovered = get_location(daemon)
    # (c) the daemon stopped while its commands wait on Redis, which dies at the same time
    def stop_daemon() -> None:
        daemon.signal(signal.SIGTERM)
        time.sleep(0.3)  # stopping, its commands still waiting

    kill_while_asleep(site.redis, stop_daemon)
    code = daemon.stop()
    log = daemon.log()
    assert code in (0, -15), log
    assert "Traceback" not in log, log
    assert down <= {302, 503} and read_only <= {302, 503}, (down, read_only, log)
    assert recovered[0] == 302, (recovered, log)
    # at most one line per service and outage (three outages)
    said = Counter(line.split("] ", 1)[1].split(": Redis unavailable")[0]
                   for line in log.splitlines() if ": Redis unavailable (" in line)
    assert all(n <= 3 for n in said.values()), said
    # the three services that used to log tracebacks lost a command at (a), and said so
    assert {"Health check", "Liveness", "Scan scheduling"} <= set(said), log
    stopping = log[log.index("Received SIGTERM"):]
    assert "Redis unavailable" not in stopping, stopping  # nothing said once stopping


def test_an_error_answer_is_said_as_such_not_as_an_outage(tmp_path: Path) -> None:
    """``MIRRORS`` of another type (written by hand, or by a tool of another schema): Redis
    answers every read of it with WRONGTYPE. The services say that answer, once each, not
    "Redis unavailable" (which sent the operator to a Redis that was up); requests are
    answered."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    repo = tmp_path / "repo"
    make_repository(repo)
    values = base_config(repo, server.address, CheckInterval="1", ScanInterval="1")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values,
                           raw=f"Fallbacks:\n  - URL: {FALLBACK}\n")
    try:
        with server.client() as db:
            db.set("MIRRORBITS_DB_VERSION", "2")  # up to date: no upgrade looks at MIRRORS
            db.set("MIRRORS", "not a hash")
        daemon.start()
        assert daemon.ctl("refresh").returncode == 0
        daemon.wait_log("Scan scheduling: Redis answered an error (WRONGTYPE", timeout=20)
        status, location = get_location(daemon)
        assert (status, location) == (302, FALLBACK + "a.txt")
        time.sleep(2.5)  # more rounds fail alike: nothing more is said
    finally:
        daemon.stop()
        server.stop()
    log = daemon.log()
    assert "Redis unavailable" not in log, log
    assert "Traceback" not in log, log
    assert log.count("Scan scheduling: Redis answered an error") == 1, log
