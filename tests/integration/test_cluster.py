"""Several ClusterService instances on one real redis-server: discovery, split, failover."""

from __future__ import annotations

import pytest
import pytest_twisted
import redis
from attrs import define
from twisted.internet import reactor

from mirrorbits.cluster import ClusterService
from mirrorbits.store import keys
from mirrorbits.store.pubsub import PubSubService
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import captured_log, eventually, started_service, within
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

MIRRORS = set(range(1, 11))


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
    redis_db.sadd(keys.MIRRORS, *MIRRORS)
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
            assert not any("gamma" in line for line in logs)

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
