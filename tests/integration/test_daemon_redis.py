"""The real daemon when Redis refuses writes, or fails over under load.

Refusals: a redis-server out of memory (``maxmemory``, ``noeviction``), then turned into a
replica and back; every download counted meanwhile must arrive once it accepts writes.

Failover: a master, a replica and two sentinels (real processes on loopback, short sentinel
timeouts), a twistd daemon configured with ``RedisSentinels``/``RedisSentinelMasterName``
only (its ``RedisAddress`` leads nowhere), mirrors on 127.0.0.41 and .42 holding the
repository's files. While a bounded load runs, ``SENTINEL FAILOVER`` moves the master: no
request may fail, the daemon must follow the new master (pub/sub, writes, scans, checks), and
every download it counted must reach the new master exactly once.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import redis

from mirrorbits.stats import FLUSH_INTERVAL
from tests.daemon import DaemonProcess, base_config, repo_file
from tests.servers import RedisServer, ReplicatedRedis, free_port, http_tree

pytestmark = pytest.mark.integration

CLIENT_IP = "100.96.2.10"  # any address: one mirror, no GeoIP preference needed
LOAD_THREADS = 3
LOAD_MAX_REQUESTS = 30_000
LOAD_MAX_SECONDS = 40.0
PAUSE = 0.002  # between two requests of a thread: a steady load, not a flood


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedRedis]:
    """Shared by the failover tests: each starts from an empty master that its sentinels
    know with an online replica (the test that kills the master comes last)."""
    servers = ReplicatedRedis.start(tmp_path_factory.mktemp("redis"))
    yield servers
    servers.stop()


FILES = ["/a.txt", *(f"/f/{n:03d}.bin" for n in range(60))]  # cache misses after a clear


def make_repository(repo: Path) -> None:
    for path in FILES:
        repo_file(repo, path, b"hello\n", 1687249800)


def hold_files(db: redis.Redis, mirror_id: int) -> None:
    """Record :data:`FILES` on a mirror as its scan would, and tell the daemons."""
    with db.pipeline(transaction=False) as pipe:
        for path in FILES:
            pipe.sadd(f"FILEMIRRORS_{path}", mirror_id)
            pipe.sadd(f"HANDLEDFILES_{mirror_id}", path)
            pipe.sadd(f"MIRRORFILES_{mirror_id}", path)
            pipe.hset(f"FILEINFO_{mirror_id}_{path}",
                      mapping={"size": "6", "modTime": "2023-06-20 08:30:00 +0000 UTC"})
            pipe.publish("_mirrorbits_mirror_file_update", f"{mirror_id} {path}")
        pipe.hset(f"MIRROR_{mirror_id}", mapping={"lastSuccessfulSyncPrecision": "1000000000"})
        pipe.execute()


@attrs.define
class Load:
    """GET ``/a.txt`` from a few threads on keep-alive connections, bounded in count and time."""

    host: str
    port: int
    statuses: Counter[object] = attrs.field(factory=Counter)
    locations: Counter[str] = attrs.field(factory=Counter)
    failures: list[str] = attrs.field(factory=list)
    _stop: threading.Event = attrs.field(factory=threading.Event)
    _threads: list[threading.Thread] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    _sent: int = 0

    def start(self) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        for _ in range(LOAD_THREADS):
            thread = threading.Thread(target=self._run, args=(deadline,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(LOAD_MAX_SECONDS + 10)

    @property
    def redirects(self) -> int:
        return self.statuses[302]

    def _take(self) -> bool:
        with self._lock:
            if self._sent >= LOAD_MAX_REQUESTS:
                return False
            self._sent += 1
            return True

    def _run(self, deadline: float) -> None:
        connection: http.client.HTTPConnection | None = None
        turn = 0
        while not self._stop.is_set() and time.monotonic() < deadline and self._take():
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            turn += 1
            path = FILES[turn % len(FILES)]
            time.sleep(PAUSE)
            try:
                connection.request("GET", path, headers={"X-Forwarded-For": CLIENT_IP})
                response = connection.getresponse()
                response.read()
                status, location = response.status, response.getheader("Location") or ""
            except Exception as err:
                with self._lock:
                    self.statuses["error"] += 1
                    self.failures.append(repr(err))
                connection.close()
                connection = None
                continue
            with self._lock:
                self.statuses[status] += 1
                self.locations[location] += 1
        if connection is not None:
            connection.close()


def get_location(daemon: DaemonProcess) -> tuple[int, str]:
    host, port = daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("HEAD", "/a.txt", headers={"X-Forwarded-For": CLIENT_IP})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               daemon: DaemonProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            log = daemon.log() if daemon is not None else ""
            raise AssertionError(f"{what}: not within {timeout} s\n{log}")
        time.sleep(0.05)


def counted(db: redis.Redis) -> dict[str, object]:
    return {
        "STATS_TOTAL": int(db.get("STATS_TOTAL") or 0),
        "STATS_FILE": sum(int(v) for v in db.hgetall("STATS_FILE").values()),
        "STATS_MIRROR": {k: int(v) for k, v in db.hgetall("STATS_MIRROR").items()},
    }


def get_many(daemon: DaemonProcess, count: int) -> Counter[int]:
    """``count`` counted downloads (GET) on one keep-alive connection; the statuses."""
    host, port = daemon.http
    statuses: Counter[int] = Counter()
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for turn in range(count):
            connection.request("GET", FILES[turn % len(FILES)],
                               headers={"X-Forwarded-For": CLIENT_IP})
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
    finally:
        connection.close()
    return statuses


def start_redirecting_to_madrid(daemon: DaemonProcess, db: redis.Redis) -> None:
    """Start ``daemon`` with one mirror, ``madrid``, up and holding ``/a.txt``: every request
    for it is a counted 302 to madrid."""
    daemon.start()
    assert daemon.ctl("refresh").returncode == 0
    assert daemon.ctl("add", "-http", "http://127.0.0.41/", "madrid").returncode == 0
    hold_files(db, 1)
    db.hset("MIRROR_1", "httpUp", "1")
    assert daemon.ctl("enable", "madrid").returncode == 0
    wait_until(lambda: get_location(daemon) == (302, "http://127.0.0.41/a.txt"), 10,
               "redirect to madrid", daemon)


def spooled_redis(tmp_path: Path) -> tuple[RedisServer, Path]:
    """A started redis-server that keeps its data across a stop (append-only file), and the
    repository the daemons of the spool tests serve."""
    server = RedisServer(workdir=tmp_path / "redis",
                         extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    server.start()
    repo = tmp_path / "repo"
    make_repository(repo)
    return server, repo


def assert_counts_survive_a_stop(daemon: DaemonProcess, server: RedisServer,
                                 spool: Path) -> None:
    """20 downloads counted, Redis stopped, 30 more answered, the daemon stopped (SIGTERM):
    they are kept in ``spool`` (said at the start, made when needed); Redis and the daemon
    started again: all 50 counted once, per file and per mirror too, the spool emptied."""
    db = server.client()
    try:
        start_redirecting_to_madrid(daemon, db)
        assert get_many(daemon, 20) == {302: 20}
        wait_until(lambda: counted(db)["STATS_TOTAL"] == 20, 10, "first counts", daemon)

        server.stop()
        assert get_many(daemon, 30) == {302: 30}  # answered, counted in memory
        daemon.stop()
        log = daemon.log()
        assert "Could not commit" not in log
        assert log.count(f"Statistics spool: {spool} (StatsSpoolDir)") == 1, log
        assert log.count("StatsSpoolDir") == 1  # no warning: it is made when needed
        assert re.search(rf"Saved [0-9]+ download\(s\) to {re.escape(str(spool))}/stats-[0-9]+-"
                         r"[0-9a-f]+\.json: they are counted at the next start", log)
        assert list(spool.glob("stats-*.json"))  # one file per process that held some

        server.start()  # the same port, its data read back from the append-only file
        db = server.client()
        assert counted(db)["STATS_TOTAL"] == 20
        daemon.start()
        wait_until(lambda: counted(db)["STATS_TOTAL"] == 50, 20, "the kept counts", daemon)
        wait_until(lambda: not list(spool.glob("stats-*.json")), 10, "the spool emptied",
                   daemon)
        assert counted(db) == {"STATS_TOTAL": 50, "STATS_FILE": 50, "STATS_MIRROR": {"1": 50}}
        daemon.wait_log("Downloads kept at a stop written to Redis")
    finally:
        daemon.stop()
        server.stop()
        db.close()
    assert "Traceback" not in daemon.log()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_downloads_counted_during_an_outage_survive_a_stop_through_the_spool(
        tmp_path: Path, workers: str) -> None:
    # walked: Redis stopped, 10 downloads answered, the daemon stopped ("Could not commit 10
    # download(s) at shutdown"), Redis back: the 10 were never counted
    server, repo = spooled_redis(tmp_path)
    spool = tmp_path / "state" / "spool"  # made at the first stop that needs it
    daemon = DaemonProcess(workdir=tmp_path / "run", args=["--no-monitor"],
                           values=base_config(repo, server.address, StatsSpoolDir=str(spool),
                                              Workers=workers))
    assert_counts_survive_a_stop(daemon, server, spool)


def test_the_embedded_daemon_keeps_its_counts_in_its_data_directory(tmp_path: Path) -> None:
    """``--repository DIR --redis-address`` (no file, a Redis that can go away): kept in
    ``./mirrorbits-data/stats-spool/HOST-PORT`` without being told (before: lost)."""
    server, repo = spooled_redis(tmp_path)
    values = {key: value for key, value in base_config(repo, server.address).items()
              if key in ("Repository", "ListenAddress", "RPCListenAddress", "RedisAddress")}
    daemon = DaemonProcess(workdir=tmp_path / "run", args=["--no-monitor"], values=values,
                           embedded=True)
    host, _, port = server.address.rpartition(":")
    spool = tmp_path / "run" / "mirrorbits-data" / "stats-spool" / f"{host}-{port}"
    assert_counts_survive_a_stop(daemon, server, spool)


def test_under_systemd_the_counts_are_kept_in_its_state_directory(tmp_path: Path) -> None:
    """A file without ``StatsSpoolDir``, started with systemd's ``STATE_DIRECTORY``
    (``StateDirectory=mirrorbits``): kept in ``$STATE_DIRECTORY/stats-spool``."""
    server, repo = spooled_redis(tmp_path)
    state = tmp_path / "var-lib-mirrorbits"
    state.mkdir()
    daemon = DaemonProcess(workdir=tmp_path / "run", args=["--no-monitor"],
                           values=base_config(repo, server.address, Workers="2"),
                           env={"STATE_DIRECTORY": str(state)})
    assert_counts_survive_a_stop(daemon, server, state / "stats-spool")


def test_downloads_counted_while_redis_refuses_writes_arrive_once_it_accepts_them(
    tmp_path: Path,
) -> None:
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    repo = tmp_path / "repo"
    make_repository(repo)
    daemon = DaemonProcess(workdir=tmp_path / "run", args=["--no-monitor"],
                           values=base_config(repo, server.address))
    db = server.client()
    try:
        start_redirecting_to_madrid(daemon, db)
        assert get_many(daemon, 100) == {302: 100}
        wait_until(lambda: counted(db)["STATS_TOTAL"] == 100, 10, "first counts", daemon)

        db.config_set("maxmemory-policy", "noeviction")
        db.config_set("maxmemory", "1")
        assert get_many(daemon, 300) == {302: 300}
        daemon.wait_log("Uncommited stats kept in-memory: OOM command not allowed when used "
                        "memory > 'maxmemory'.")
        time.sleep(2 * FLUSH_INTERVAL + 0.2)  # a few refused flushes
        assert counted(db)["STATS_TOTAL"] == 100
        db.config_set("maxmemory", "0")
        wait_until(lambda: counted(db)["STATS_TOTAL"] == 400, 10, "counts after OOM", daemon)

        db.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # keeps its data
        assert get_many(daemon, 200) == {302: 200}  # answered from memory meanwhile
        daemon.wait_log("not a master (role: slave)")
        time.sleep(1.0)
        db.execute_command("REPLICAOF", "NO", "ONE")
        wait_until(lambda: counted(db)["STATS_TOTAL"] == 600, 15, "counts after REPLICAOF",
                   daemon)
        code = daemon.stop()
        assert code in (0, -15)
        assert counted(db) == {"STATS_TOTAL": 600, "STATS_FILE": 600,
                               "STATS_MIRROR": {"1": 600}}
    finally:
        db.config_set("maxmemory", "0")
        db.execute_command("REPLICAOF", "NO", "ONE")
        daemon.stop()
        db.close()
        server.stop()
    log = daemon.log()
    assert "statistics increments were refused" not in log
    assert "Could not commit" not in log


@attrs.define
class SentinelSite:
    """The repository, two HTTP mirrors of it, and a daemon that knows only the sentinels,
    redirecting to ``madrid`` (the health check found it up)."""

    repo: Path
    madrid_url: str
    lisbon_url: str
    daemon: DaemonProcess


@pytest.fixture
def site(tmp_path: Path, group: ReplicatedRedis) -> Iterator[SentinelSite]:
    repo = tmp_path / "repo"
    make_repository(repo)
    mirrors = contextlib.ExitStack()
    madrid_url = mirrors.enter_context(http_tree(repo, "127.0.0.41"))
    lisbon_url = mirrors.enter_context(http_tree(repo, "127.0.0.42"))
    sentinels = "".join(f"\n  - Host: {s.address}" for s in group.sentinels)
    values = base_config(repo, f"127.0.0.1:{free_port()}",  # nothing there: Sentinel only
                         RedisSentinelMasterName="mymaster", RedisSentinels=sentinels)
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
    master = group.current_master()
    group.wait_replicated(master, timeout=20)
    group.wait_sentinels_know_the_replica(timeout=30)
    try:
        with master.client() as db:
            db.flushall()  # what an earlier test left
            daemon.start()
            wait_until(lambda: db.scard("FILES") == len(FILES), 20, "repository scan", daemon)
            # the control channel may refuse until the daemon has its Sentinel's answer (slow
            # on a loaded machine): asked again until it accepts
            wait_until(lambda: daemon.ctl("add", "-http", madrid_url, "madrid").returncode == 0,
                       30, "the daemon to accept a mirror", daemon)
            hold_files(db, 1)
            assert daemon.ctl("enable", "madrid").returncode == 0
            wait_until(lambda: get_location(daemon) == (302, madrid_url + "a.txt"), 20,
                       "redirect to madrid", daemon)
            assert counted(db)["STATS_TOTAL"] == 0  # HEAD requests are not counted
        yield SentinelSite(repo, madrid_url, lisbon_url, daemon)
    finally:
        daemon.stop()
        mirrors.close()


def assert_counted_once(site: SentinelSite, load: Load, master: RedisServer) -> None:
    """After a clean stop, the master's counters equal the 302s the load received."""
    code = site.daemon.stop()
    log = site.daemon.log()
    assert code in (0, -15), log
    assert load.failures == [], load.failures[:5]
    assert set(load.statuses) == {302}, (dict(load.statuses), dict(load.locations))
    assert load.redirects > 500  # the load ran throughout
    by_mirror: Counter[str] = Counter()
    for location, n in load.locations.items():
        by_mirror["1" if location.startswith(site.madrid_url) else "2"] += n
    with master.client() as db:
        totals = counted(db)
    assert totals == {"STATS_TOTAL": load.redirects, "STATS_FILE": load.redirects,
                      "STATS_MIRROR": dict(by_mirror)}, log


def test_sentinel_failover_under_load_loses_no_request_and_no_download(
    site: SentinelSite, group: ReplicatedRedis
) -> None:
    daemon = site.daemon
    load = Load(*daemon.http)
    load.start()
    try:
        time.sleep(2.0)
        old, new = group.failover()
        # The daemon follows the sentinels at once, while the former master still acts as
        # one (and would drop whatever it is given until it is demoted).
        daemon.wait_log(f"Connected to redis master {new.address}", timeout=5)
        with old.client() as former:
            assert former.execute_command("ROLE")[0] == "master"
        with new.client() as new_db:
            # Writes through the daemon reach the new master: a mirror added now is checked...
            added = daemon.ctl("add", "-http", site.lisbon_url, "lisbon")
            assert added.returncode == 0, added.stderr
            assert new_db.hget("MIRRORS", "2") == "lisbon"
            hold_files(new_db, 2)
            assert daemon.ctl("enable", "lisbon").returncode == 0
            wait_until(lambda: new_db.hget("MIRROR_2", "httpUp") == "1", 20,
                       "lisbon checked", daemon)
            # ...the local repository is scanned into it...
            repo_file(site.repo, "/b.txt", b"bee\n", 1687249800)
            refreshed = daemon.ctl("refresh")
            assert refreshed.returncode == 0, refreshed.stderr
            assert new_db.sismember("FILES", "/b.txt")
            # ...and pub/sub follows: madrid disabled there, redirects go to lisbon.
            assert daemon.ctl("disable", "madrid").returncode == 0
            assert new_db.hget("MIRROR_1", "enabled") == "0"
            wait_until(lambda: get_location(daemon) == (302, site.lisbon_url + "a.txt"), 10,
                       "redirect to lisbon", daemon)
        group.wait_demoted(old, new)
        time.sleep(1.0)
    finally:
        load.stop()
    assert_counted_once(site, load, new)


def test_master_crash_under_load_loses_no_request_and_no_download(
    site: SentinelSite, group: ReplicatedRedis
) -> None:
    """The master is killed: the sentinels promote the replica after down-after-milliseconds.

    Meanwhile the daemon answers from memory; once pub/sub is back (on the new master) the
    caches are cleared, and a cache miss waits for the command connection instead of
    failing. Before that wait: about 170 of 7,700 answers were 503s."""
    load = Load(*site.daemon.http)
    old = group.current_master()
    new = group.replica if old is group.master else group.master
    assert old.process is not None
    load.start()
    try:
        time.sleep(2.0)
        old.process.kill()
        old.process.wait(10)
        deadline = time.monotonic() + 30
        while group.sentinels[0].master_address() != new.address:
            assert time.monotonic() < deadline, "no failover"
            time.sleep(0.05)
        site.daemon.wait_log(f"Connected to redis master {new.address}", timeout=10)
        time.sleep(2.0)
    finally:
        load.stop()
    assert_counted_once(site, load, new)
