# mypy: disable-error-code="untyped-decorator,import-untyped"
"""A mirror users are sent to is verified more often than an idle one, never more than
``MAX_PER_TURN`` files a turn, the files of a turn asked over one connection
(mirrorbits/health/pace.py, kept.py, docs/freshness.md): the verification against two real
HTTP mirrors on loopback and a real redis-server, its turns on a fake clock."""

from __future__ import annotations

from collections import Counter

import pytest
import pytest_twisted
import redis
from attrs import define, field
from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Request

from mirrorbits.config import Config
from mirrorbits.health.kept import KeptConnections
from mirrorbits.health.pace import MAX_PER_TURN
from mirrorbits.health.verify import POPULARITY_EVERY, FileVerifier
from mirrorbits.httppool import AddressRefused
from mirrorbits.model import Mirror
from mirrorbits.stats import utc_date
from mirrorbits.store import keys
from mirrorbits.store.events import PROTO_HTTP
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from mirrorbits.store.statistics import day_suffixes
from tests.integration.store_support import eventually
from tests.integration.test_health import clock, ports, serve

pytestmark = pytest.mark.integration
__all__ = ["clock", "ports"]  # fixtures

FILES = {f"/f{number}.bin": 100 + number for number in range(12)}
MODIFIED = "2023-06-20 08:30:00 +0000 UTC"
INTERVAL = 2


@define
class CountingSite(Resource):
    """A mirror holding every file of :data:`FILES`; each request's (clock time, method,
    client port: one per connection)."""

    clock: Clock
    seen: list[tuple[float, str, int]] = field(factory=list)
    paths: list[str] = field(factory=list)  # the paths asked, in order
    isLeaf = True

    def __attrs_post_init__(self) -> None:
        Resource.__init__(self)

    def render(self, request: Request) -> bytes:
        port = getattr(request.getClientAddress(), "port", 0)
        self.seen.append((self.clock.seconds(), request.method.decode(), port))
        self.paths.append(request.path.decode())
        size = FILES.get(request.path.decode())
        if size is None:
            request.setResponseCode(404)
            return b""
        request.setHeader(b"content-length", str(size).encode())
        return b""


def index_files(db: redis.Redis) -> None:
    """:data:`FILES` indexed in the repository."""
    for path, size in FILES.items():
        db.hset(keys.file(path), mapping={"size": str(size), "modTime": MODIFIED})
        db.sadd(keys.FILES, path)


async def up_mirror_holding_all(store: MirrorStore, db: redis.Redis, name: str,
                                url: str) -> Mirror:
    mirror = await store.add_mirror(Mirror(name=name, http_url=url, rsync_url="rsync://x/"))
    await store.set_enabled(mirror.id, True)
    await store.set_state(mirror.id, PROTO_HTTP, True, "")
    for path, size in FILES.items():
        db.sadd(keys.file_mirrors(path), mirror.id)
        db.hset(keys.file_info(mirror.id, path), mapping={"size": str(size), "modTime": MODIFIED})
        db.sadd(keys.mirror_files(mirror.id), path)
    return mirror


@pytest_twisted.ensureDeferred
async def test_a_mirror_receiving_users_is_verified_more_never_past_the_cap(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    index_files(redis_db)
    busy_site, idle_site = CountingSite(clock), CountingSite(clock)
    busy = await up_mirror_holding_all(store, redis_db, "busy",
                                       serve(ports, busy_site, "127.0.0.91"))
    idle = await up_mirror_holding_all(store, redis_db, "idle",
                                       serve(ports, idle_site, "127.0.0.92"))
    today = day_suffixes(utc_date(clock.seconds()))[0]
    for rank, path in enumerate(FILES):
        redis_db.hset(keys.STATS_FILE + today, path, 100 - rank)
    redis_db.hset(keys.STATS_MIRROR + today, mapping={busy.id: 1000, idle.id: 7})
    connections = KeptConnections(reactor)
    verifier = FileVerifier(lambda: Config(verify_interval=INTERVAL), service.client, store,
                            clock, lambda *_: None, connections=connections)

    async def run_for(seconds: int) -> None:
        """The verification's ticks, one second of the clock each, every round and its
        HEADs done before the next; meanwhile 10 users are sent to "busy" every 3 s, none
        to "idle"."""
        for second in range(seconds):
            if second % 3 == 0:
                redis_db.hincrby(keys.STATS_MIRROR + today, str(busy.id), 10)
            clock.advance(1)
            await eventually(lambda: not verifier.busy)

    verifier.startService()
    try:
        await eventually(lambda: not verifier.busy)
        await run_for(int(POPULARITY_EVERY))  # the rate read: 3.3 users a second
        start = clock.seconds()
        await run_for(40)  # 20 turns at the rate read
    finally:
        await verifier.stopService()
    busy_heads = [(when, port) for when, method, port in busy_site.seen
                  if method == "HEAD" and when > start]
    idle_heads = [when for when, method, _ in idle_site.seen if method == "HEAD" and when > start]
    per_turn = Counter(when for when, _ in busy_heads)
    print(f"\nin 40 s: busy {len(busy_heads)} HEADs ({sorted(per_turn.values())} a turn, over "
          f"{len({port for _, port in busy_heads})} connections), idle {len(idle_heads)}")
    assert len(idle_heads) == 20  # the base rate: one a turn
    # 3.3 users a second, one HEAD per two, a turn every 2 s: 3.3 a turn (3 or 4)
    assert 60 <= len(busy_heads) <= 70
    assert max(per_turn.values()) <= MAX_PER_TURN
    assert len({port for _, port in busy_heads}) <= len(per_turn)  # a turn: one connection
    assert connections.open <= 2


@pytest_twisted.ensureDeferred
async def test_a_flooded_mirror_gets_the_cap_and_distinct_files(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    index_files(redis_db)
    site = CountingSite(clock)
    mirror = await up_mirror_holding_all(store, redis_db, "flooded",
                                         serve(ports, site, "127.0.0.93"))
    today = day_suffixes(utc_date(clock.seconds()))[0]
    for rank, path in enumerate(FILES):
        redis_db.hset(keys.STATS_FILE + today, path, 100 - rank)
    verifier = FileVerifier(lambda: Config(verify_interval=INTERVAL), service.client, store,
                            clock, lambda *_: None, connections=KeptConnections(reactor))
    verifier.startService()
    try:
        await eventually(lambda: not verifier.busy)
        redis_db.hincrby(keys.STATS_MIRROR + today, str(mirror.id), 30_000)  # 1,000 a second
        for _ in range(int(POPULARITY_EVERY) + 10):
            clock.advance(1)
            await eventually(lambda: not verifier.busy)
    finally:
        await verifier.stopService()
    assert verifier.turns[mirror.id][-5:] == [MAX_PER_TURN] * 5
    last = max(when for when, _, _ in site.seen)
    assert len([when for when, _, _ in site.seen if when == last]) == MAX_PER_TURN


@pytest_twisted.ensureDeferred
async def test_a_kept_connection_is_judged_by_each_requests_address_rule(
    clock: Clock, ports: list[IListeningPort],
) -> None:
    """A connection kept from one request is not a way around the next one's rule (the
    redirect policy's): refused, the request fails and the connection is closed."""
    site = CountingSite(clock)
    url = serve(ports, site, "127.0.0.94") + "/f1.bin"
    connections = KeptConnections(reactor)
    admitted: list[str] = []

    def admit(peer: object) -> str | None:
        admitted.append(getattr(peer, "host", ""))
        return None

    try:
        first = await connections.agent(admit).request(b"HEAD", url.encode())
        assert first.code == 200
        await eventually(lambda: connections.open == 1)
        second = await connections.agent(admit).request(b"HEAD", url.encode())
        assert second.code == 200
        assert admitted[-1] == "127.0.0.94" and len(admitted) >= 2  # the kept one judged too
        await eventually(lambda: connections.open == 1)
        with pytest.raises(AddressRefused):
            await connections.agent(lambda _peer: "not that one").request(b"HEAD", url.encode())
    finally:
        await connections.close()
    assert len({port for _, _, port in site.seen}) == 1  # both answered over one connection
    assert len(site.seen) == 2  # the refused one never sent


@pytest_twisted.ensureDeferred
async def test_a_boost_verifies_the_files_downloaded_since_the_last_popularity_read(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    index_files(redis_db)
    site = CountingSite(clock)
    mirror = await up_mirror_holding_all(store, redis_db, "m", serve(ports, site, "127.0.0.93"))
    today = day_suffixes(utc_date(clock.seconds()))[0]
    redis_db.hset(keys.STATS_FILE + today, "/f0.bin", 50)
    verifier = FileVerifier(lambda: Config(verify_interval=10), service.client, store, clock,
                            lambda *_: None, connections=KeptConnections(reactor))
    verifier.startService()
    try:
        await eventually(lambda: not verifier.busy)  # popularity read: /f0.bin alone
        redis_db.hset(keys.STATS_FILE + today, "/f7.bin", 20)  # first asked since
        verifier.boost(mirror.id)  # a lost file was found there
        for _ in range(3):
            clock.advance(1)
            await eventually(lambda: not verifier.busy)
    finally:
        await verifier.stopService()
    # without the fresh read, /f7.bin waits for the next one, POPULARITY_EVERY later
    assert "/f7.bin" in site.paths, site.paths
