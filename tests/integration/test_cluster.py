"""ClusterService on a real redis-server: announces, the mirror IDs, failures, several nodes.

The single-node tests drive the announce loop with a ``Clock`` (so each tick is explicit)
while Redis I/O runs on the real reactor; failures are real ones (a key of the wrong type,
a stopped or frozen redis-server). The multi-node test runs on the real reactor only.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import redis
from attrs import define
from twisted.internet import reactor
from twisted.internet.task import Clock

from mirrorbits.cluster import ClusterService
from mirrorbits.store import keys
from mirrorbits.store.pubsub import PubSubService
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import (
    captured_log,
    eventually,
    received,
    started_service,
    subscribe,
    within,
)
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

MIRRORS = set(range(1, 11))
NODE = "b-00002"
PEER = "a-00001"  # sorts first: NODE is the second of two
FAILED = "Cluster announce failed ("
RECOVERED = ("Cluster announce works again: this node checks and scans its share of the "
             "mirrors")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server, for the tests that stop or freeze it."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def sync_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, decode_responses=True)


def set_mirrors(db: redis.Redis, *ids: int) -> None:
    """A current database whose ``MIRRORS`` is, as the CLI writes it, a hash of ID -> name."""
    db.set(keys.DB_VERSION, str(keys.CURRENT_DB_VERSION))  # no upgrade to run
    db.delete(keys.MIRRORS)
    if ids:
        db.hset(keys.MIRRORS, mapping={str(m): f"m{m}" for m in ids})


def handled(cluster: ClusterService, upto: int = 4) -> list[int]:
    return [m for m in range(1, upto + 1) if cluster.handles(m)]


async def announced(cluster: ClusterService, clock: Clock, seconds: float = 1.0) -> None:
    """Advance ``clock`` by ``seconds`` and wait until that tick's announce read the IDs."""
    clock.advance(seconds)
    await eventually(lambda: cluster.mirror_ids_read_at == clock.seconds())


@pytest_twisted.ensureDeferred
async def test_announces_every_interval_starting_at_once(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    set_mirrors(redis_db)
    store = await started_service(redis_server)
    clock = Clock()
    db = [0]
    cluster = ClusterService(store.client, lambda: db[0], clock, NODE)
    listener = subscribe(redis_db, keys.CHANNEL_CLUSTER)
    try:
        cluster.startService()
        await eventually(lambda: cluster.mirror_ids_read_at == 0.0)
        await announced(cluster, clock)
        db[0] = 3
        await announced(cluster, clock)
        cluster.stopService()
        clock.advance(5.0)
        assert received(listener) == [(keys.CHANNEL_CLUSTER, f"HELLO{n} {NODE}")
                                      for n in (0, 0, 3)]
    finally:
        listener.close()
        cluster.stopService()
        await within(store.stopService())


@pytest_twisted.ensureDeferred
async def test_the_mirror_ids_are_the_fields_of_the_mirrors_hash(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    set_mirrors(redis_db)
    redis_db.hset(keys.MIRRORS, mapping={"3": "c", "1": "a", "x": "x", "": "e", "2.5": "f",
                                         "12": "l", "+4": "p", "-5": "n"})
    store = await started_service(redis_server)
    clock = Clock()
    cluster = ClusterService(store.client, lambda: 0, clock, NODE)
    try:
        cluster.startService()
        await eventually(lambda: cluster.mirror_ids_read_at == 0.0)
        assert cluster.mirror_ids == (1, 3, 12)
        set_mirrors(redis_db, 4)
        await announced(cluster, clock)
        assert cluster.mirror_ids == (4,)
    finally:
        cluster.stopService()
        await within(store.stopService())


@pytest_twisted.ensureDeferred
async def test_a_mirrors_key_of_the_wrong_type_fails_safe_and_recovers(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    """``MIRRORS`` as a set (what the old code read, with SMEMBERS): the read fails, so the
    node handles every mirror and says so once, until the hash is back."""
    set_mirrors(redis_db)
    redis_db.sadd(keys.MIRRORS, "1", "2", "3", "4")
    store = await started_service(redis_server)
    clock = Clock()
    cluster = ClusterService(store.client, lambda: 0, clock, NODE)
    with captured_log("mirrorbits.cluster") as logs:
        try:
            cluster.startService()
            cluster.on_announce(f"HELLO0 {PEER}")
            await eventually(lambda: any(FAILED in line for line in logs))
            for _ in range(3):
                clock.advance(1.0)
                await eventually(lambda: cluster.mirror_ids_read_at is None)
            assert handled(cluster) == [1, 2, 3, 4]
            set_mirrors(redis_db, 1, 2, 3, 4)
            cluster.on_announce(f"HELLO0 {PEER}")
            await announced(cluster, clock)
            assert cluster.nodes == (PEER, NODE)
            assert handled(cluster) == [3, 4]
        finally:
            cluster.stopService()
            await within(store.stopService())
    assert logs == [
        f"Cluster node ID: {NODE}",
        f"-> Node {PEER} joined the cluster",
        "Cluster announce failed (WRONGTYPE Operation against a key holding the wrong kind of "
        "value): this node checks and scans every mirror until it works again",
        RECOVERED,
    ]


@pytest_twisted.ensureDeferred
async def test_a_database_that_is_down_fails_safe_quietly(own_redis: RedisServer) -> None:
    """Redis stopped: the Redis service reports it, the cluster handles every mirror meanwhile."""
    db = sync_client(own_redis)
    set_mirrors(db, 1, 2, 3, 4)
    store = await started_service(own_redis)
    clock = Clock()
    cluster = ClusterService(store.client, lambda: 0, clock, NODE)
    with captured_log("mirrorbits.cluster") as logs:
        try:
            cluster.startService()
            cluster.on_announce(f"HELLO0 {PEER}")
            await eventually(lambda: cluster.mirror_ids_read_at == 0.0)
            assert handled(cluster) == [3, 4]
            own_redis.stop()
            await eventually(lambda: not store.ready)
            clock.advance(1.0)
            assert cluster.mirror_ids_read_at is None
            assert handled(cluster) == [1, 2, 3, 4]
            own_redis.start()  # same port, empty
            set_mirrors(sync_client(own_redis), 1, 2, 3, 4)
            await within(store.whenReady())
            await announced(cluster, clock)
            assert cluster.nodes == (PEER, NODE)
            assert handled(cluster) == [3, 4]
        finally:
            cluster.stopService()
            await within(store.stopService())
    assert logs == [f"Cluster node ID: {NODE}", f"-> Node {PEER} joined the cluster"]


@pytest_twisted.ensureDeferred
async def test_an_unexpected_error_is_logged_and_the_loop_goes_on(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    set_mirrors(redis_db, 1, 2)
    store = await started_service(redis_server)
    calls = [0]

    def client() -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("boom")
        return store.client()

    clock = Clock()
    cluster = ClusterService(client, lambda: 0, clock, NODE)
    with captured_log("mirrorbits.cluster") as logs:
        try:
            cluster.startService()
            cluster.on_announce(f"HELLO0 {PEER}")
            await eventually(lambda: cluster.mirror_ids_read_at == 0.0)
            clock.advance(1.0)
            assert cluster.mirror_ids_read_at is None
            assert handled(cluster, 2) == [1, 2]
            await announced(cluster, clock)
            assert handled(cluster, 2) == [2]
        finally:
            cluster.stopService()
            await within(store.stopService())
    assert logs[2:] == ["Unexpected error in the cluster announce"]


def publishes(server: RedisServer) -> int:
    """How many PUBLISH commands ``server`` executed."""
    stats = sync_client(server).info("commandstats").get("cmdstat_publish", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


@pytest_twisted.ensureDeferred
async def test_a_frozen_redis_one_announce_at_a_time_then_a_timeout(
    own_redis: RedisServer,
) -> None:
    """redis-server stopped with SIGSTOP: the announce waits, no other one is sent meanwhile;
    the ID list goes stale after the node timeout (every mirror handled), the announce gives
    up after 5 s and the next one goes out."""
    set_mirrors(sync_client(own_redis), 1, 2, 3, 4)
    store = await started_service(own_redis)
    clock = Clock()
    cluster = ClusterService(store.client, lambda: 0, clock, NODE)
    assert own_redis.process is not None
    pid = own_redis.process.pid
    with captured_log("mirrorbits.cluster") as logs:
        try:
            cluster.startService()
            await eventually(lambda: cluster.mirror_ids_read_at == 0.0)
            os.kill(pid, signal.SIGSTOP)
            for _ in range(10):  # t = 0.5 .. 5.0: the announce sent at 1.0 gets no answer
                cluster.on_announce(f"HELLO0 {PEER}")
                clock.advance(0.5)
            assert handled(cluster) == [3, 4]  # read exactly 5 s ago: still holds
            clock.advance(0.5)
            assert not cluster.share_known
            assert handled(cluster) == [1, 2, 3, 4]
            assert logs[2:] == []
            clock.advance(0.5)  # 6.0: five seconds without an answer
            assert logs[2:] == [
                "Cluster announce failed (no answer from Redis within 5 s): this node checks "
                "and scans every mirror until it works again"]
            clock.advance(1.0)  # the next announce goes out
            os.kill(pid, signal.SIGCONT)
            await eventually(lambda: cluster.mirror_ids_read_at == clock.seconds())
            assert logs[3:] == [RECOVERED]
            assert handled(cluster) == [3, 4]
            assert publishes(own_redis) == 3
        finally:
            os.kill(pid, signal.SIGCONT)
            cluster.stopService()
            await within(store.stopService())


@pytest_twisted.ensureDeferred
async def test_stopping_cancels_the_announce_in_flight_quietly(own_redis: RedisServer) -> None:
    set_mirrors(sync_client(own_redis))
    store = await started_service(own_redis)
    clock = Clock()
    cluster = ClusterService(store.client, lambda: 0, clock, NODE)
    assert own_redis.process is not None
    pid = own_redis.process.pid
    with captured_log("mirrorbits.cluster") as logs:
        try:
            os.kill(pid, signal.SIGSTOP)
            cluster.startService()
            cluster.stopService()
            clock.advance(10.0)
        finally:
            os.kill(pid, signal.SIGCONT)
            await within(store.stopService())
    assert logs == [f"Cluster node ID: {NODE}"]
    assert not cluster.running
    assert cluster.mirror_ids_read_at is None
    assert publishes(own_redis) == 1


@define
class Node:
    """One daemon's worth of services: Redis pool, subscriber, cluster."""

    store: RedisService
    pubsub: PubSubService
    cluster: ClusterService
    heard: list[str]  # every cluster message this node's subscriber delivered

    def handled(self) -> set[int]:
        return {m for m in MIRRORS if self.cluster.handles(m)}

    async def stop(self) -> None:
        if self.cluster.running:
            self.cluster.stopService()
        if self.pubsub.running:
            await within(self.pubsub.stopService())
        if self.store.running:
            await within(self.store.stopService())


async def start_node(server: RedisServer, node_id: str, db: int = 0) -> Node:
    store = await started_service(server, db)
    pubsub = PubSubService(server.address, "", reactor)
    cluster = ClusterService(store.client, lambda: store.db, reactor, node_id,
                             announce_interval=0.1, node_timeout=0.5)
    heard: list[str] = []
    pubsub.on_message(keys.CHANNEL_CLUSTER, cluster.on_announce)
    pubsub.on_message(keys.CHANNEL_CLUSTER, heard.append)  # after on_announce saw it
    pubsub.startService()
    await within(pubsub.whenReady())
    cluster.startService()
    return Node(store, pubsub, cluster, heard)


@pytest_twisted.ensureDeferred
async def test_nodes_find_each_other_split_the_mirrors_and_take_over(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    redis_db.set(keys.DB_VERSION, str(keys.CURRENT_DB_VERSION))  # no upgrade to run
    set_mirrors(redis_db, *MIRRORS)
    nodes: list[Node] = []
    with captured_log("mirrorbits.cluster") as logs:
        try:
            a = await start_node(redis_server, "alpha-00001")
            nodes.append(a)
            b = await start_node(redis_server, "beta-00002")
            nodes.append(b)
            both = ("alpha-00001", "beta-00002")

            def split() -> bool:
                return (a.cluster.nodes == b.cluster.nodes == both
                        and len(a.cluster.mirror_ids) == len(b.cluster.mirror_ids) == 10)

            await eventually(split, 5)
            assert (a.cluster.index, b.cluster.index) == (0, 1)
            assert a.handled() == {1, 2, 3, 4, 5}
            assert b.handled() == {6, 7, 8, 9, 10}
            assert "-> Node beta-00002 joined the cluster" in logs
            assert "-> Node alpha-00001 joined the cluster" in logs

            # Another RedisDB on the same server is another cluster.
            other = await start_node(redis_server, "gamma-00003", db=1)
            nodes.append(other)
            hello = "HELLO1 gamma-00003"
            await eventually(lambda: a.heard.count(hello) >= 3 and b.heard.count(hello) >= 3, 5)
            assert a.cluster.nodes == b.cluster.nodes == both
            assert other.cluster.nodes == ("gamma-00003",)
            assert other.cluster.mirror_ids == ()
            assert not any("gamma" in line for line in logs if "node ID" not in line)

            # beta stops announcing: alpha takes every mirror once beta is 0.5 s silent.
            stopped = reactor.seconds()
            await b.stop()
            await eventually(lambda: a.cluster.nodes == ("alpha-00001",), 5)
            # Not before the node timeout (0.5 s minus the 0.1 s between two announces).
            assert reactor.seconds() - stopped > 0.35
            assert a.handled() == MIRRORS
            assert "<- Node beta-00002 left the cluster" in logs
        finally:
            for node in nodes:
                await node.stop()
