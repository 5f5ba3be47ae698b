"""A Redis made a replica still answers the daemon's reads (docs/reliability.md#redis): a
real daemon (with ``Workers: 2``, or without), its own redis-server made a replica of a dead
address, and two real ``python -m http.server`` mirrors on loopback."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from mirrorbits.store import keys
from tests.daemon import (
    MOD_TIME,
    DaemonProcess,
    add_mirrors_holding,
    base_config,
    redirect,
    repo_file,
)
from tests.integration.test_daemon_redis import wait_until
from tests.integration.test_held_down import HELD
from tests.integration.test_liveness_killed import east_and_west
from tests.integration.test_workers import worker_pids
from tests.servers import RedisServer, free_port, http_tree

pytestmark = pytest.mark.integration

REPLICA = "is a replica: read from"
NOT_MASTER = "not a master (role: slave)"


def test_a_replica_is_read_by_a_worker_started_and_for_a_file_first_asked_in_the_outage(
        tmp_path: Path) -> None:
    """While Redis refuses writes as a replica, a download of a file the cache never held
    (``/c.txt``: its mirrors recorded without a message, as a file the cache had no room
    for) and, after the workers were killed and replaced, downloads from the new workers
    (their caches empty) are 302s to the mirrors Redis names. Before, every process dropped its
    links to a Redis that is not a master: each of those downloads got a 503 for the whole
    outage."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    db = server.client()
    repo = tmp_path / "repo"
    paths = ("/a.txt", "/b.txt", "/c.txt")
    for name in ("repo", "north", "south"):  # /c.txt not on the mirrors: their scans miss it
        for path in paths if name == "repo" else paths[:2]:
            repo_file(tmp_path / name, path, b"hello\n", 1687249800)
    daemon: DaemonProcess | None = None
    try:
        with http_tree(tmp_path / "north", "127.0.0.97") as north, \
                http_tree(tmp_path / "south", "127.0.0.98") as south:
            mirrors = {north, south}
            values = base_config(repo, server.address, Workers="2", ScanInterval="1000")
            daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
            daemon.start()
            daemon.wait_log("Indexed 3 files", timeout=30)
            daemon.wait_log("HTTP served by 2 worker processes", timeout=30)
            add_mirrors_holding(daemon, db, [("north", north), ("south", south)],
                                {"/a.txt": 6, "/b.txt": 6})
            for name in ("north", "south"):  # their first scans are done
                daemon.wait_log(f"[{name}] Indexed 2 files", timeout=30)
            for mirror_id in (1, 2):  # /c.txt too, with no message: the cache never holds it
                db.sadd("FILEMIRRORS_/c.txt", mirror_id)
                db.hset(f"FILEINFO_{mirror_id}_/c.txt",
                        mapping={"size": "6", "modTime": MOD_TIME})
            time.sleep(1)  # their messages read
            assert redirect(daemon, "/a.txt")[0] == 302

            db.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
            daemon.wait_log("Database is down", timeout=15)
            daemon.wait_log(NOT_MASTER, timeout=15)
            time.sleep(2)  # the workers' links too (their lines are the daemon's echoes)
            first_asked = [redirect(daemon, "/c.txt") for _ in range(2)]

            assert daemon.process is not None
            served = len(re.findall(r"HTTP worker \d+ serves", daemon.log()))
            for pid in worker_pids(daemon.process.pid):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: daemon is not None and
                       len(re.findall(r"HTTP worker \d+ serves", daemon.log())) >= served + 2,
                       30, "both workers replaced", daemon)
            replaced = [redirect(daemon, path) for path in paths for _ in range(2)]
            masters = daemon.log().count("Connected to redis master")
            db.execute_command("REPLICAOF", "NO", "ONE")
            wait_until(lambda: daemon is not None and
                       daemon.log().count("Connected to redis master") > masters, 15,
                       "back on a master", daemon)
            time.sleep(2)  # the workers' links too
            after = redirect(daemon, "/b.txt")
            log = daemon.log()
    finally:
        if daemon is not None:
            daemon.stop()
        server.stop()
        db.close()
    answers = first_asked + replaced + [after]
    assert [code for code, _ in answers] == [302] * len(answers), (answers, log)
    assert {url.rsplit("/", 1)[0] + "/" for _, url in answers} <= mirrors, answers
    assert log.count(REPLICA) == 1, log  # said once, by the daemon (the workers' echoed)
    assert "Traceback" not in log


def test_a_daemon_started_while_redis_is_a_replica_checks_the_mirrors_it_reads_there(
        tmp_path: Path) -> None:
    """The daemon restarted while Redis is a replica of a dead address, one mirror killed:
    its health check and liveness read the mirror list from the replica, find the mirror
    down and hold it down; every download is a 302 to the other. Before, the new process
    read nothing: no check at all (no list ever read) and a 503 for every download."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    db = server.client()
    repo, servers = east_and_west(tmp_path, ("127.0.0.89", "127.0.0.90"))
    (east, east_url), west_url = servers["east"], servers["west"][1]
    values = base_config(repo, server.address, CheckInterval="1", ScanInterval="1000",
                         LivenessInterval="1")
    first = DaemonProcess(workdir=tmp_path / "first", values=values)
    second = DaemonProcess(workdir=tmp_path / "second", values=values)
    try:
        first.start()
        first.wait_log("Indexed 1 files", timeout=30)
        add_mirrors_holding(first, db, [("east", east_url), ("west", west_url)],
                            {"/a.txt": 6})
        assert redirect(first, "/a.txt")[0] == 302
        first.stop()

        db.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        east.send_signal(signal.SIGKILL)
        east.wait(10)
        give_up = time.monotonic() + 25
        second.start()
        wait_until(lambda: NOT_MASTER in second.log() or REPLICA in second.log(), 30,
                   "Redis seen a replica", second)
        wait_until(lambda: HELD in second.log() or time.monotonic() > give_up, 30,
                   "held down, or given up")
        time.sleep(0.3)
        during = [redirect(second, "/a.txt") for _ in range(15)]
        assert db.hget(keys.mirror(1), "httpUp") == "1"  # Redis did not record it
        log = second.log()
    finally:
        first.stop()
        second.stop()
        for process, _ in servers.values():
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        server.stop()
        db.close()
    assert during == [(302, west_url + "a.txt")] * len(during), (during, log)
    assert HELD in log and REPLICA in log, log
    assert "Traceback" not in log
