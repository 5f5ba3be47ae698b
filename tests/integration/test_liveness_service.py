# mypy: disable-error-code="untyped-decorator,import-untyped"
"""The liveness service in-process, on the real reactor against real listening sockets on
loopback and a real redis-server: which mirrors are probed, and the verdict."""

from __future__ import annotations

import random
from itertools import pairwise
from typing import Any, cast

import attrs
import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from mirrorbits.config import Config
from mirrorbits.health.liveness import REASON, LivenessProbes
from mirrorbits.model import Mirror
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import captured_log, eventually, sleep
from tests.integration.test_health import state

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Counting(Factory):
    def __init__(self) -> None:
        self.connections = 0

    def buildProtocol(self, addr: Any) -> Protocol:
        self.connections += 1
        return Protocol()


def listen(host: str, factory: Counting, port: int = 0) -> IListeningPort:
    return reactor.listenTCP(port, factory, interface=host)


async def mirror_at(store: MirrorStore, name: str, port: IListeningPort, up: bool) -> Mirror:
    address = cast(Any, port.getHost())
    mirror = await store.add_mirror(Mirror(name=name,
                                           http_url=f"http://{address.host}:{address.port}/"))
    await store.set_enabled(mirror.id, True)
    if up:
        await store.set_state(mirror.id, 1, True, "")
    return mirror


@pytest_twisted.ensureDeferred
async def test_only_up_mirrors_of_this_node_are_probed_and_two_failures_mark_down(
        store: MirrorStore, service: RedisService, redis_db: redis.Redis) -> None:
    counters = {name: Counting() for name in ("mine", "other", "down")}
    ports = {name: listen(f"127.0.0.{86 + i}", counters[name])
             for i, name in enumerate(counters)}
    mine = await mirror_at(store, "mine", ports["mine"], up=True)
    other = await mirror_at(store, "other", ports["other"], up=True)
    await mirror_at(store, "down", ports["down"], up=False)
    config = attrs.evolve(Config(), liveness_interval=1)
    probes = LivenessProbes(lambda: config, service.client, store, reactor,
                            handles=lambda mirror_id: mirror_id != other.id)
    probes.startService()
    try:
        await sleep(3.5)
        assert 3 <= counters["mine"].connections <= 6  # the probes, and the held one
        assert counters["other"].connections == counters["down"].connections == 0

        mine_port = cast(Any, ports["mine"].getHost()).port
        await ports["mine"].stopListening()
        with captured_log("mirrorbits.health") as said:
            await eventually(lambda: state(redis_db, mine.id).get("httpUp") == "0", 5)
            assert state(redis_db, mine.id)["httpDownReason"] == REASON
            assert state(redis_db, other.id)["httpUp"] == "1"
            # Back: the probes do not bring it up again (the health check does).
            ports["mine"] = listen("127.0.0.86", counters["mine"], mine_port)
            await sleep(2.5)
        assert state(redis_db, mine.id)["httpUp"] == "0"
        assert sum("mine HTTP: down, Unreachable (liveness)" in line for line in said) == 1
    finally:
        await probes.stopService()
        for port in ports.values():
            await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_probe_turns_keep_the_interval_despite_the_rounds_jitter(
        store: MirrorStore, service: RedisService) -> None:
    """A round every second on a clock (each a few ms late, as the reactor's and the mirrors'
    read make them): a mirror's turns come every 2 s at 2 s. Before, a round a little less
    late than the one two ticks before found the mirror not yet due and it waited a whole
    tick: 2.6 s apart on average (2.64 measured on the real reactor)."""
    clock = MemoryReactorClock()
    mirror = await store.add_mirror(Mirror(name="m", http_url="http://127.0.0.86:9/"))
    await store.set_enabled(mirror.id, True)
    await store.set_state(mirror.id, 1, True, "")
    turns: list[float] = []

    def answered(_mirror_id: int, _proto: int, _seconds: float) -> bool:
        turns.append(clock.seconds())
        return True  # a verification answered: no connection (none is needed here)

    config = attrs.evolve(Config(), liveness_interval=2)
    probes = LivenessProbes(lambda: config, service.client, store, clock, answered=answered)
    rng = random.Random(7)
    probes.startService()
    try:
        for tick in range(1, 61):
            await eventually(lambda: not probes._reading)  # the round read the mirrors
            clock.advance(tick + rng.uniform(0.0, 0.05) - clock.seconds())
        await eventually(lambda: not probes._reading)
    finally:
        await probes.stopService()
    gaps = [later - earlier for earlier, later in pairwise(turns)]
    assert len(turns) >= 30 and min(gaps) >= 1.9 and max(gaps) <= 2.1, gaps
