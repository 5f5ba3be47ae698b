"""The daemon's log read as an operator reads it, on a real twistd process.

A normal start, a ``mirrorbits-ctl`` session (with mistakes), a reload and a stop log no
factory or connection chatter and no traceback; a missing repository, missing GeoIP
databases and a mirror that goes down are each said once, and again only when it changes.
"""

from __future__ import annotations

import re
import shutil
import signal
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import redis

from mirrorbits.store import keys
from tests.daemon import FIXTURES, DaemonProcess, base_config, record_mirror_files, repo_file
from tests.servers import RedisServer, StaticHTTPServer

pytestmark = pytest.mark.integration

NOISE = ("Starting factory", "Stopping factory", "connection established", "connection lost",
         "Traceback", "#critical", "Database is down", "not ready")


def noise(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(word in line for word in NOISE)]


def count(log: str, text: str) -> int:
    return sum(text in line for line in log.splitlines())


def test_start_ctl_session_reload_and_stop_log_what_matters(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(repo, redis_server.address))
    daemon.start()
    try:
        daemon.wait_log("No mirror is registered yet", timeout=30)
        host, port = daemon.http
        with pytest.raises(urllib.request.HTTPError) as root:
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=10)
        assert root.value.code == 503
        assert root.value.read() == b"Service Unavailable\n"  # a file start keeps the reference's
        assert daemon.ctl("list").returncode == 0
        assert daemon.ctl("stats", "file", "[").returncode == 1  # a bad pattern
        assert daemon.ctl("add", "-http", "http://no-such-host.invalid/", "nowhere").returncode == 1
        daemon.wait_log("Control command AddMirror refused")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("SIGHUP Received: Reloading configuration...")
    finally:
        daemon.stop()
    log = daemon.log()
    assert noise(log) == []
    assert count(log, "Control command StatsFile refused: invalid pattern '['") == 1
    assert count(log, "Control command AddMirror refused: IP lookup failed: lookup "
                      "no-such-host.invalid") == 1
    assert count(log, "HTTP starting on") == 1
    assert count(log, "GeoIP") == 0  # the test databases load: nothing to warn about


def test_missing_repository_and_geoip_are_said_once(tmp_path: Path,
                                                    redis_server: RedisServer) -> None:
    repo = tmp_path / "repo"  # created later
    geo = tmp_path / "geo"
    values = base_config(repo, redis_server.address, GeoipDatabasePath=f"{geo}/")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
    daemon.start()
    try:
        daemon.wait_log("Repository scan failed")
        time.sleep(4)  # the first scan is retried every second
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("SIGHUP Received: Reloading configuration...")
        reloaded = daemon.ctl("reload")
        assert reloaded.returncode == 0 and "GeoIP" not in reloaded.stderr, reloaded.stderr
        log = daemon.log()
        assert "GeoipDatabasePath" not in log  # the GeoIP line below is the only one
        assert count(log, "[source] Scanning the filesystem...") == 1
        assert count(log, f"[source] Repository scan failed: {repo}: No such file") == 1
        warning = (f"[mirrorbits.geo#warn] GeoIP: cannot load GeoLite2-City.mmdb and "
                   f"GeoLite2-ASN.mmdb from {geo}/ (No such file or directory): clients are not "
                   "located, so each redirect goes to a mirror drawn at random among those "
                   'holding the file. How to get and update them: "GeoIP databases" in '
                   "README.md")
        assert count(log, warning) == 1  # not again at the reload
        # Both come back without a restart.
        repo_file(repo, "/a.txt", b"hello\n", 1687249800)
        geo.mkdir()
        for name in ("GeoLite2-City.mmdb", "GeoLite2-ASN.mmdb"):
            shutil.copy(FIXTURES / "geo" / name, geo / name)
        daemon.wait_log("[source] Indexed 1 files, 0 removed")
        daemon.wait_log("Loading GeoLite2-ASN.mmdb database", timeout=20)
        daemon.wait_log("Loading GeoLite2-City.mmdb database", timeout=20)
    finally:
        daemon.stop()
    assert noise(daemon.log()) == []


def test_missing_geoip_is_said_by_the_daemon_not_by_each_worker(
        tmp_path: Path, redis_server: RedisServer) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    values = base_config(repo, redis_server.address, GeoipDatabasePath=f"{tmp_path}/geo/",
                         Workers="2")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    daemon.start()
    try:
        daemon.wait_log("HTTP served by 2 worker processes", timeout=30)
        log = daemon.log()
    finally:
        daemon.stop()
    assert count(log, "GeoIP: cannot load") == 1, log  # the daemon's, not three times


def test_a_mirror_going_down_is_said_once(tmp_path: Path, redis_server: RedisServer,
                                          redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    mirror = StaticHTTPServer(repo, host="127.0.0.31")
    mirror.start()
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address, CheckInterval="0",
                                              ScanInterval="1000"))
    daemon.start()
    try:
        assert daemon.ctl("add", "-http", mirror.url, "madrid").returncode == 0
        record_mirror_files(redis_db, 1, {"/a.txt": 6}, "2023-06-20 08:30:00 +0000 UTC")
        redis_db.sadd(keys.handled_files(1), "/a.txt")
        redis_db.hset("MIRROR_1", "httpUp", "0")  # down, as a new mirror is: its "Up!" is news
        assert daemon.ctl("enable", "madrid").returncode == 0
        daemon.wait_log("HTTP  Up!")
        time.sleep(3)  # checked every second: still up
        mirror.stop()
        daemon.wait_log("HTTP  Error:")
        time.sleep(3)  # still down
        log = daemon.log()
    finally:
        daemon.stop()
        mirror.stop()
    assert count(log, "[mirrorbits.health.checker#") == 2  # about 6 checks
    assert count(log, "HTTP  Up!") == 1
    assert count(log, "HTTP  Error:") == 1
    assert noise(log) == []


def process_lines(log: str, text: str) -> Counter[str]:
    """How many lines say ``text``, by process (the daemon is "", a worker "worker PID")."""
    said: Counter[str] = Counter()
    for line in log.splitlines():
        if text in line:
            before = line.split("] ", 1)[1].split(text)[0]
            said[before.split(":")[0] if before.startswith("worker ") else ""] += 1
    return said


def test_redis_killed_and_restarted_is_said_once(tmp_path: Path) -> None:
    """Redis lost and back is said once each way, by the daemon: not again by each worker
    (which sees the same event on its own connections), and none of the pool's
    per-connection "Scheduling retry" lines."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    values = base_config(repo, server.address, Workers="2", CheckInterval="1")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
    try:
        daemon.start()
        daemon.wait_log("HTTP served by 2 worker processes", timeout=30)
        time.sleep(1)
        assert server.process is not None
        server.process.kill()
        server.process.wait(10)
        server.process = None
        daemon.wait_log("Database is down", timeout=20)
        time.sleep(5)  # the pool's connections retry several times meanwhile
        before_restart = len(daemon.log())
        server.start()
        deadline = time.monotonic() + 30
        while process_lines(daemon.log(), "Connected to redis master")[""] < 2:
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.1)
        time.sleep(3)  # what the workers said is relayed (or not) within 2 s
    finally:
        daemon.stop()
        server.stop()
    log = daemon.log()
    assert count(log, "Scheduling retry") == 0, log
    assert count(log, "Traceback") == 0 and count(log, "#critical") == 0, log
    assert len(re.findall(r"worker (\d+): HTTP starting", log)) == 2, log
    assert process_lines(log, "Database is down") == {"": 1}, log
    assert process_lines(log, "Pub/sub connection lost") == {"": 1}, log
    # at start, then once back; the workers' reconnections are the same event
    assert process_lines(log, "Connected to redis master")[""] == 2, log
    assert process_lines(log[before_restart:], "Connected to redis master") == {"": 1}, log


def test_each_configuration_note_is_said_once_per_start_and_reload(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """With worker processes, an unknown key, a key that is not used, a missing LogDir and
    MirmonExportFile directory: each note once at start and once per reload, said by the
    configuration check alone (not again by the download log of each process, nor by the
    export)."""
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    logs, export = tmp_path / "logs", tmp_path / "mirmon" / "list"
    values = base_config(repo, redis_server.address, Workers="2", Bogus="1",
                         RedisSentinelMasterName="main", LogDir=str(logs),
                         MirmonExportFile=str(export))
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
    notes = ("unknown configuration key 'Bogus'",
             "RedisSentinelMasterName 'main' is not used without RedisSentinels",
             # (the MirmonExportFile note shortens a long path)
             f"LogDir '{logs}' does not exist", "its directory does not exist: the file is not")
    try:
        daemon.start()
        daemon.wait_log("HTTP served by 2 worker processes", timeout=30)
        time.sleep(2)  # the export's first attempt, the download logs' retries
        reloaded = daemon.ctl("reload")
        assert reloaded.returncode == 0, reloaded.stderr
        said = reloaded.stdout + reloaded.stderr
        assert [said.count(note) for note in notes] == [1] * len(notes), said
        time.sleep(1)
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while count(daemon.log(), "Reloading configuration") < 3 * 2:  # each process, twice
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.1)
        time.sleep(2)
        logs.mkdir()  # then written, without a word
        export.parent.mkdir()
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not export.exists() or not (logs / "downloads.log").exists():
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.1)
    finally:
        daemon.stop()
    log = daemon.log()
    # at start and at the three reloads (the directories exist at the third)
    assert [count(log, note) for note in notes] == [4, 4, 3, 3], log
    assert count(log, "Cannot open the download log") == 0, log
    assert count(log, "not updated") == 0, log
    assert count(log, "Traceback") == 0, log


def test_a_mirror_already_up_is_not_said_up_again_by_the_next_process(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """A restart, an upgrade or a node taking over another's share checks mirrors Redis
    already records up: "Up!" would read as a mirror coming back (the walk of 2026-12-05
    saw "m2 HTTP Up!" right after "<- Node ... left the cluster"). Only at debug level."""
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    mirror = StaticHTTPServer(repo, host="127.0.0.32")
    mirror.start()
    try:
        log = checked_by_two_processes(tmp_path, repo, mirror, redis_server, redis_db)
    finally:
        mirror.stop()
    said_up = [line for line in log.splitlines() if "HTTP  Up!" in line]
    assert said_up and all("#debug]" in line for line in said_up), said_up
    assert count(log, "#error] madrid") == 1, log


def checked_by_two_processes(tmp_path: Path, repo: Path, mirror: StaticHTTPServer,
                             redis_server: RedisServer, redis_db: redis.Redis) -> str:
    """The second daemon's log (``--debug``): the first enabled ``mirror`` and saw it up,
    the second checked it, then saw it stop."""
    values = base_config(repo, redis_server.address, CheckInterval="0", ScanInterval="1000")
    first = DaemonProcess(workdir=tmp_path / "first", values=values)
    first.start()
    try:
        assert first.ctl("add", "-http", mirror.url, "madrid").returncode == 0
        record_mirror_files(redis_db, 1, {"/a.txt": 6}, "2023-06-20 08:30:00 +0000 UTC")
        redis_db.sadd(keys.handled_files(1), "/a.txt")
        redis_db.hset("MIRROR_1", "httpUp", "0")  # down, as a new mirror is
        assert first.ctl("enable", "madrid").returncode == 0
        first.wait_log("HTTP  Up!")  # recorded down: news
    finally:
        first.stop()
    second = DaemonProcess(workdir=tmp_path / "second", values=values, args=["--debug"])
    second.start()
    try:
        second.wait_log("HTTP  Up!")  # checked, quietly
        mirror.stop()
        second.wait_log("HTTP  Error:")  # a change is still said
        return second.log()
    finally:
        second.stop()


def test_sigusr1_after_logrotate_moved_the_log_writes_to_a_new_one(
        tmp_path: Path, redis_server: RedisServer) -> None:
    # walked: logrotate's default (mv, then kill -USR1 in postrotate) left the daemon writing
    # into the moved file for good; twistd rotates its log on SIGUSR1 only when it is in place
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(repo, redis_server.address))
    daemon.start()
    try:
        rotated = daemon.log_path.with_name("twistd.log.rotated")
        daemon.log_path.rename(rotated)  # logrotate's mv
        daemon.signal(signal.SIGUSR1)  # its postrotate
        daemon.wait_log("SIGUSR1 Received: Re-opening logs...")  # in the new file
        assert "Re-opening logs" not in rotated.read_text()

        # logrotate's `create`: an empty file made at the path before the signal
        daemon.log_path.rename(rotated)
        daemon.log_path.write_text("")
        daemon.signal(signal.SIGUSR1)
        daemon.wait_log("SIGUSR1 Received: Re-opening logs...")
        assert rotated.read_text().count("Re-opening logs") == 1  # the first signal's only

        # a log left in place is still rotated by twistd, as before: renamed to .1
        daemon.signal(signal.SIGUSR1)
        first = daemon.log_path.with_name("twistd.log.1")
        deadline = time.monotonic() + 10
        while not first.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.exists()
        daemon.wait_log("SIGUSR1 Received: Re-opening logs...")
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log()


def test_twistd_does_not_rotate_its_log_by_itself(tmp_path: Path,
                                                  redis_server: RedisServer) -> None:
    # walked: twistd renamed its --logfile to .1, .2... at every megabyte and kept them all,
    # files logrotate's `*.log` rule never sees (the disk filled up); the reference's -log is
    # one file, rotated by logrotate only
    repo = tmp_path / "repo"
    folder = "d" * 200
    for index in range(2200):  # a line of about 500 bytes each when indexed: over 1 MB
        repo_file(repo, f"/{folder}/{index:05d}{'f' * 180}.iso", b"x", 1687249800)
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(repo, redis_server.address))
    daemon.start()
    try:
        assert daemon.ctl("refresh").returncode == 0
        daemon.wait_log("Indexed 2200 files", timeout=60)
    finally:
        daemon.stop()
    assert daemon.log_path.stat().st_size > 1_000_000
    assert not daemon.log_path.with_name("twistd.log.1").exists()
