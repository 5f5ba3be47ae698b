# mypy: disable-error-code="import-untyped"
"""A mirror found down while Redis refuses writes gets no user from this node
(docs/reliability.md#redis): a real daemon with ``Workers: 2``, its own redis-server made to
refuse writes (``min-replicas-to-write 1`` without replica, or a replica of a dead
address), and two real ``python -m http.server`` mirrors on loopback, one killed."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mirrorbits.store import keys
from tests.daemon import DaemonProcess, add_mirrors_holding, base_config, redirect
from tests.integration.test_daemon_redis import wait_until
from tests.integration.test_liveness_killed import east_and_west
from tests.integration.test_workers import worker_pids
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

HELD = "east HTTP: found down"
RELEASED = "no longer held down in memory"


def refuse_writes(db: redis.Redis, how: str) -> None:
    if how == "min-replicas":
        db.config_set("min-replicas-to-write", 1)
    else:
        db.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))


def accept_writes(db: redis.Redis, how: str) -> None:
    if how == "min-replicas":
        db.config_set("min-replicas-to-write", 0)
    else:
        db.execute_command("REPLICAOF", "NO", "ONE")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("how", ["min-replicas", "replica"])
def test_a_mirror_found_down_while_redis_refuses_writes_gets_no_user(
        tmp_path: Path, own_redis: RedisServer, how: str) -> None:
    db = redis.Redis(host=own_redis.host, port=own_redis.port, decode_responses=True)
    repo, servers = east_and_west(tmp_path, ("127.0.0.93", "127.0.0.94"))
    (east, east_url), west_url = servers["east"], servers["west"][1]
    values = base_config(repo, own_redis.address, CheckInterval="1", ScanInterval="1000",
                         LivenessInterval="3", Workers="2")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
    daemon.start()
    try:
        daemon.wait_log("Indexed 1 files", timeout=30)
        daemon.wait_log("HTTP served by 2 worker processes", timeout=30)
        add_mirrors_holding(daemon, db, [("east", east_url), ("west", west_url)],
                            {"/a.txt": 6})
        deadline = time.monotonic() + 30
        seen: set[str] = set()
        while seen != {east_url + "a.txt", west_url + "a.txt"}:
            assert time.monotonic() < deadline, seen
            seen.add(redirect(daemon, "/a.txt")[1])
        time.sleep(2.5)  # the idle connections are held (opened at the next round)

        refuse_writes(db, how)
        time.sleep(1.5)  # every process sees it (the replica: the daemon's link drops)
        east.send_signal(signal.SIGKILL)
        east.wait(10)
        daemon.wait_log(HELD, timeout=15)
        time.sleep(0.3)  # the workers read the daemon's line
        during = [redirect(daemon, "/a.txt") for _ in range(30)]
        # new workers are told the set when they start (a replica's record says it is up)
        assert daemon.process is not None
        for pid in worker_pids(daemon.process.pid):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(re.findall(r"HTTP worker \d+ serves", daemon.log())) >= 2,
                   30, "both workers replaced", daemon)
        during += [redirect(daemon, "/a.txt") for _ in range(30)]
        assert db.hget(keys.mirror(1), "httpUp") == "1"  # Redis did not record it
        held_log = daemon.log()

        accept_writes(db, how)
        # asked all along: no answer goes to it between its release and Redis' record read
        after: list[tuple[int, str]] = []
        deadline = time.monotonic() + 30
        while db.hget(keys.mirror(1), "httpUp") != "0" or RELEASED not in daemon.log():
            assert time.monotonic() < deadline, f"east recorded down:\n{daemon.log()}"
            after.append(redirect(daemon, "/a.txt"))
            time.sleep(0.02)
        after += [redirect(daemon, "/a.txt") for _ in range(30)]
        log = daemon.log()
    finally:
        daemon.stop()
        for process, _ in servers.values():
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        db.close()
    assert {status for status, _ in during} == {302}, (during, log)
    to_east = sum(location.startswith(east_url) for _, location in during)
    print(f"\n{how}: {to_east} of {len(during)} redirects to the killed mirror while held")
    assert to_east == 0, held_log
    print(f"{len(after)} redirects while Redis accepted writes again, none to it")
    assert all(location.startswith(west_url) for _, location in after), (after, log)
    assert log.count(HELD) == 1, log  # said once, however many failed writes
    assert "Traceback" not in log



def test_nodes_that_lose_their_redis_and_each_other_still_check_every_mirror(
        tmp_path: Path, own_redis: RedisServer) -> None:
    """Redis made a replica of a dead address: the nodes no longer see each other (``left
    the cluster``) nor read Redis; each goes on checking every mirror from the list it last
    read, the other node's share too, and holds down the one killed. Before, neither checked
    anything until Redis was back: the node whose share the mirror was not never saw it."""
    db = redis.Redis(host=own_redis.host, port=own_redis.port, decode_responses=True)
    repo, servers = east_and_west(tmp_path, ("127.0.0.95", "127.0.0.96"))
    (east, east_url), west_url = servers["east"], servers["west"][1]
    nodes = [DaemonProcess(workdir=tmp_path / f"node{index}", values=base_config(
        repo, own_redis.address, CheckInterval="1", ScanInterval="1000",
        LivenessInterval="1"))
        for index in (1, 2)]
    try:
        for node in nodes:
            node.start()
        nodes[0].wait_log("Indexed 1 files", timeout=30)
        for node in nodes:
            node.wait_log("joined the cluster", timeout=15)
        add_mirrors_holding(nodes[0], db, [("east", east_url), ("west", west_url)],
                            {"/a.txt": 6})
        for node in nodes:
            deadline = time.monotonic() + 30
            seen: set[str] = set()
            while seen != {east_url + "a.txt", west_url + "a.txt"}:
                assert time.monotonic() < deadline, seen
                seen.add(redirect(node, "/a.txt")[1])
        time.sleep(2.5)  # each node checked its share, and read the mirror list

        refuse_writes(db, "replica")
        for node in nodes:
            node.wait_log("left the cluster", timeout=20)
        time.sleep(2.5)  # each node's probes take every mirror (its connections held)
        east.send_signal(signal.SIGKILL)
        east.wait(10)
        for node in nodes:
            node.wait_log(HELD, timeout=20)
        time.sleep(0.3)
        during = [redirect(node, "/a.txt") for node in nodes for _ in range(15)]
        assert db.hget(keys.mirror(1), "httpUp") == "1"

        accept_writes(db, "replica")
        wait_until(lambda: db.hget(keys.mirror(1), "httpUp") == "0", 20,
                 "east recorded down", nodes[0])
        for node in nodes:
            node.wait_log(RELEASED, timeout=15)
        logs = [node.log() for node in nodes]
    finally:
        for node in nodes:
            node.stop()
        for process, _ in servers.values():
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        db.close()
    assert [status for status, _ in during] == [302] * len(during), during
    to_east = sum(location.startswith(east_url) for _, location in during)
    print(f"\n{to_east} of {len(during)} redirects to the killed mirror (two nodes)")
    assert to_east == 0, logs
    for log in logs:
        assert "Traceback" not in log
