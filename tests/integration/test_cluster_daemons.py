"""Two real daemons on one real redis-server share the checks and scans of real mirrors (§15.1).

Each mirror is a ``python -m http.server`` process (``StaticHTTPServer``) on its own 127.0.0.x
address (stopping it makes the mirror unreachable) and a module of one ``rsync --daemon``.
``CheckInterval: 0`` makes every handled mirror due on each one-second tick, so "one check
interval" is about a second here. Which node checked or scanned which mirror is read from each
node's own log (the ``<name> HTTP Up!`` and ``[<name>] Indexed`` lines; the nodes run with
``--debug``, since a check whose outcome did not change is logged at debug level).
"""

from __future__ import annotations

import http.client
import re
import signal
import time
from collections.abc import Callable, Iterator

import attrs
import pytest
import redis

from mirrorbits.cluster import partition
from tests.daemon import DaemonProcess, base_config, repo_file
from tests.servers import (
    RedisServer,
    RsyncServer,
    StaticHTTPServer,
    start_mirrors,
)

pytestmark = pytest.mark.integration

MIRRORS = 6
CONTENT = b"hello\n"
MTIME = 1687249800  # 2023-06-20 08:30:00 UTC
MOD_TIME = "2023-06-20 08:30:00 +0000 UTC"
CLIENT = {"X-Forwarded-For": "100.96.2.10"}
NODE_TIMEOUT = 5.0  # seconds a silent node stays a member (§15.1)
TICK = 1.0  # the health checker's scheduling tick: one check interval with CheckInterval 0
CHECK_LINE = re.compile(r"\] (m\d+) +HTTP +(Up!|Error)")
SCAN_LINE = re.compile(r"\] \[(m\d+)\] Indexed ")
JOINED = re.compile(r"-> Node (\S+) joined the cluster")


@attrs.define
class Cluster:
    """Two monitoring daemons, their mirrors and a redis-py client on their database."""

    db: redis.Redis
    nodes: list[DaemonProcess]
    mirrors: dict[int, StaticHTTPServer]  # mirror ID -> its server; mirror N is named mN

    def node_id(self, node: int) -> str:
        """The ID of ``nodes[node]``, as its peer logged it when it joined."""
        return only(JOINED.findall(self.nodes[1 - node].log()))

    def share_of(self, node: int) -> set[int]:
        """The mirrors §15.1 gives ``nodes[node]`` while both nodes run."""
        ids = sorted(self.node_id(n) for n in (0, 1))
        return set(partition(self.mirrors, 2, ids.index(self.node_id(node))))

    def up(self, mirror_id: int) -> str | None:
        value = self.db.hget(f"MIRROR_{mirror_id}", "httpUp")
        return None if value is None else str(value)


def only(found: list[str]) -> str:
    assert len(set(found)) == 1, found
    return found[0]


def checked(node: DaemonProcess, since: int) -> set[int]:
    """IDs of the mirrors ``node`` logged a check result for after log offset ``since``."""
    return {int(name[1:]) for name, _ in CHECK_LINE.findall(node.log()[since:])}


def scanned(node: DaemonProcess, since: int) -> set[int]:
    """IDs of the mirrors ``node`` logged a finished scan of after log offset ``since``."""
    return {int(name[1:]) for name in SCAN_LINE.findall(node.log()[since:])}


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)
    return time.monotonic() - start


def redirect_targets(node: DaemonProcess) -> str:
    """Location and Link headers of one ``GET /a.txt`` (fresh connection)."""
    host, port = node.http
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", "/a.txt", headers=CLIENT)
        response = connection.getresponse()
        response.read()
        assert response.status == 302, response.status
        return " ".join(v for k, v in response.getheaders() if k.lower() in ("location", "link"))
    finally:
        connection.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A private redis-server (a test changes its ACL), six mirrors, two daemons; shared by
    the module's tests, the one that kills a node and mirrors last."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    redis_server = RedisServer(workdir=tmp_path / "redis")
    redis_server.start()
    redis_db = redis.Redis(host=redis_server.host, port=redis_server.port,
                           decode_responses=True)
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", CONTENT, MTIME)
    mirrors = {m: StaticHTTPServer(tmp_path / f"mirror{m}", f"127.0.0.{40 + m}")
               for m in range(1, MIRRORS + 1)}
    for server in mirrors.values():
        repo_file(server.root, "/a.txt", CONTENT, MTIME)
    rsyncd = RsyncServer(tmp_path / "rsyncd", {f"m{m}": s.root for m, s in mirrors.items()})
    extra = {"CheckInterval": "0", "ScanInterval": "720"}
    nodes = [DaemonProcess(workdir=tmp_path / f"node{n}",
                           values=base_config(repo, redis_server.address, **extra),
                           args=["--debug"])
             for n in (1, 2)]
    try:
        start_mirrors(mirrors.values())
        rsyncd.start()
        nodes[0].start()
        wait_until(lambda: redis_db.hget("FILE_/a.txt", "size") == str(len(CONTENT)), 20,
                   "local scan")
        for mirror_id, server in mirrors.items():
            add_mirror(nodes[0], redis_db, mirror_id, server.url, rsyncd.url(f"m{mirror_id}"))
        nodes[1].start()
        yield Cluster(redis_db, nodes, mirrors)
    finally:
        for node in nodes:
            node.stop()
        for server in mirrors.values():
            server.stop()
        rsyncd.stop()
        redis_db.close()
        redis_server.stop()


def add_mirror(node: DaemonProcess, db: redis.Redis, mirror_id: int, url: str,
               rsync_url: str) -> None:
    """Add ``m<id>`` with the CLI, record a scan that found ``/a.txt`` up, enable it."""
    name = f"m{mirror_id}"
    added = node.ctl("add", "-http", url, "-rsync", rsync_url, name)
    assert added.returncode == 0, added.stderr
    assert db.hget("MIRRORS", str(mirror_id)) == name
    now = str(int(time.time()))
    db.hset(f"MIRROR_{mirror_id}", mapping={
        "httpUp": "1", "lastSync": now, "lastSuccessfulSync": now,
        "lastSuccessfulSyncPrecision": "1000000000"})
    db.sadd(f"HANDLEDFILES_{mirror_id}", "/a.txt")
    db.sadd("FILEMIRRORS_/a.txt", mirror_id)
    db.hset(f"FILEINFO_{mirror_id}_/a.txt", mapping={"size": str(len(CONTENT)),
                                                     "modTime": MOD_TIME})
    db.publish("_mirrorbits_mirror_file_update", f"{mirror_id} /a.txt")
    enabled = node.ctl("enable", name)
    assert enabled.returncode == 0, enabled.stderr


def test_a_node_that_cannot_read_the_mirror_ids_checks_every_mirror(cluster: Cluster) -> None:
    """Fail safe: with ``HKEYS`` refused by Redis (an ACL), neither node can tell its share, so
    each checks every mirror and says so once; once allowed again, each is back to its share."""
    a, b = cluster.nodes
    everything = set(cluster.mirrors)
    wait_until(lambda: JOINED.search(a.log()) and JOINED.search(b.log()), 15, "discovery")
    share = [cluster.share_of(0), cluster.share_of(1)]
    failing = "Cluster announce failed ("
    recovered = "Cluster announce works again"
    try:
        cluster.db.acl_setuser("default", commands=["-hkeys"])
        # A check round a node started alone, before it saw the other join, also names every
        # mirror: count only the rounds after the node says it lost its share.
        for node in (a, b):
            node.wait_log(failing, 10 * TICK)
        since = [len(a.log()), len(b.log())]
        wait_until(lambda: all(checked(n, since[i]) == everything for i, n in enumerate((a, b))),
                   10 * TICK, "both nodes check every mirror")
        for node in (a, b):
            assert node.log().count(failing) == 1, node.log()
            assert "this node checks and scans every mirror" in node.log()
            assert node.log().count("left the cluster") == 0  # both are still members
    finally:
        cluster.db.acl_setuser("default", commands=["+@all"])
    for node in (a, b):
        node.wait_log(recovered, 10)
    time.sleep(2 * TICK)  # checks started before the recovery have finished
    since = [len(a.log()), len(b.log())]
    time.sleep(3 * TICK)
    assert [checked(a, since[0]), checked(b, since[1])] == share
    for node in (a, b):
        assert node.log().count(failing) == node.log().count(recovered) == 1


def test_two_daemons_split_the_checks_and_take_over_from_a_dead_node(cluster: Cluster) -> None:
    a, b = cluster.nodes
    everything = set(cluster.mirrors)
    start = [len(a.log()), len(b.log())]

    # (a) Both nodes see each other, then each checks exactly its §15.1 share.
    wait_until(lambda: JOINED.search(a.log()) and JOINED.search(b.log()), 15, "discovery")
    time.sleep(2 * TICK)  # checks started before the nodes met have finished
    since = [len(a.log()), len(b.log())]
    share = [cluster.share_of(0), cluster.share_of(1)]
    assert share[0] and share[1] and share[0] | share[1] == everything

    def each_checks_its_share() -> bool:
        return checked(a, since[0]) == share[0] and checked(b, since[1]) == share[1]

    wait_until(each_checks_its_share, 10 * TICK, f"each node checks its share {share}")
    time.sleep(2 * TICK)
    assert checked(a, since[0]) == share[0], a.log()[since[0]:]
    assert checked(b, since[1]) == share[1], b.log()[since[1]:]

    # ... and scans exactly its share once every mirror is due for a scan.
    since = [len(a.log()), len(b.log())]
    for mirror_id in everything:
        cluster.db.hset(f"MIRROR_{mirror_id}", "lastSync", "0")
    wait_until(lambda: scanned(a, since[0]) | scanned(b, since[1]) == everything, 20,
               "every mirror scanned")
    assert [scanned(a, since[0]), scanned(b, since[1])] == share

    # (b) A mirror of a's share dies: marked down within about one interval, no more users.
    victim = min(share[0])
    victim_url = cluster.mirrors[victim].url
    wait_until(lambda: all(victim_url in redirect_targets(n) for n in (a, b)), 10,
               "the mirror is offered while up")
    cluster.mirrors[victim].stop()
    took = wait_until(lambda: cluster.up(victim) == "0", 3 * TICK + 5, "marked down")
    print(f"mirror {victim} marked down {took:.2f} s after its server died")
    wait_until(lambda: all(victim_url not in redirect_targets(n) for n in (a, b)), 5,
               "redirects stop")
    for _ in range(10):
        for node in (a, b):
            assert victim_url not in redirect_targets(node)

    # (c) b is killed: a takes over b's share once b is silent for the node timeout, and a
    # mirror of that share dying is marked down by a.
    b_id = cluster.node_id(1)
    b.signal(signal.SIGKILL)
    assert b.process is not None
    b.process.wait(10)
    orphan = max(share[1])
    cluster.mirrors[orphan].stop()
    took = wait_until(lambda: cluster.up(orphan) == "0", NODE_TIMEOUT + 3 * TICK + 10,
                      "the dead node's mirror marked down")
    print(f"mirror {orphan} of the killed node marked down {took:.2f} s after the kill")
    assert took >= NODE_TIMEOUT - 2 * TICK  # a took it over, it did not check it before
    assert f"<- Node {b_id} left the cluster" in a.log()
    since_a = len(a.log())
    wait_until(lambda: checked(a, since_a) == everything, 5 * TICK, "a checks every mirror")
    for mirror_id in share[1]:
        cluster.db.hset(f"MIRROR_{mirror_id}", "lastSync", "0")
    wait_until(lambda: scanned(a, since_a) == share[1], 20, "a scans the dead node's share")
    logs = a.log()[start[0]:] + b.log()[start[1]:]
    assert "Cluster announce failed" not in logs
    assert "_HTTP11ClientFactory" not in logs  # no two lines per check
