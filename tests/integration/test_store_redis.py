"""RedisService against real redis-servers: readiness, outages, passwords, Sentinel, SIGHUP."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from mirrorbits.store import keys
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.loop import STARTUP_GRACE
from mirrorbits.store.pubsub import PubSubService
from mirrorbits.store.redis import RETRY_MAX, RedisService
from tests.integration.store_support import captured_log, eventually, sleep, within
from tests.servers import RedisServer, ReplicatedRedis, SentinelServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test only, not started yet (its port is reserved)."""
    server = RedisServer(workdir=tmp_path / "redis", port=free_port())
    yield server
    server.stop()


def server_version(server: RedisServer) -> tuple[int, ...]:
    client = redis.Redis(host=server.host, port=server.port, password=server.password or None)
    try:
        return tuple(int(p) for p in str(client.info("server")["redis_version"]).split("."))
    finally:
        client.close()


@pytest_twisted.ensureDeferred
async def test_fresh_database_is_marked_version_2_and_becomes_ready(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    service = RedisService(redis_server.address, "", 3, (), "", reactor)
    assert service.name == "redis"
    assert not service.ready
    with pytest.raises(DatabaseNotReady):
        service.client()
    with captured_log() as messages:
        service.startService()
        try:
            await within(service.whenReady())
            assert service.ready
            assert await service.client().get("anything") is None
        finally:
            await within(service.stopService())
    db3 = redis.Redis(host=redis_server.host, port=redis_server.port, db=3, decode_responses=True)
    assert db3.get(keys.DB_VERSION) == "2"
    assert redis_db.get(keys.DB_VERSION) is None  # the configured DB only
    version = ".".join(map(str, server_version(redis_server)))
    assert f"Connected to redis master {redis_server.address} (version {version})" in messages
    assert service.redis_version == server_version(redis_server)
    assert not service.ready
    with pytest.raises(DatabaseNotReady):
        service.client()


@pytest_twisted.ensureDeferred
async def test_numbers_are_never_converted(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    redis_db.hset("h", mapping={"a": "0", "b": "48.8582", "c": "0123"})
    service = RedisService(redis_server.address, "", 0, (), "", reactor)
    service.startService()
    try:
        await within(service.whenReady())
        assert await service.client().hgetall("h") == {"a": "0", "b": "48.8582", "c": "0123"}
    finally:
        await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_redis_down_at_start_then_up_then_down_then_up(
    private_server: RedisServer,
) -> None:
    service = RedisService(private_server.address, "", 0, (), "", reactor)
    with captured_log() as messages:
        service.startService()
        try:
            await sleep(1.0)  # several attempts fail meanwhile, quietly at first
            assert not any(m.startswith("Database is down: ") for m in messages), messages
            # then it is said at the first attempt after the grace (the back-off puts one
            # near STARTUP_GRACE + 0.5 s: awaited, not slept, so a slow machine passes), once
            await eventually(lambda: any(m.startswith("Database is down: ") for m in messages),
                             STARTUP_GRACE + 2 * RETRY_MAX + 2.0)
            await sleep(2 * RETRY_MAX + 0.5)  # two more attempts fail meanwhile
            down = [m for m in messages if m.startswith("Database is down: ")]
            assert len(down) == 1, messages
            assert private_server.address in down[0]
            assert not service.ready
            with pytest.raises(DatabaseNotReady):
                service.client()

            private_server.start()
            await within(service.whenReady())
            connected = f"Connected to redis master {private_server.address} (version "
            assert sum(m.startswith(connected) for m in messages) == 1
            assert await service.client().get(keys.DB_VERSION) == "2"

            private_server.stop()
            await eventually(lambda: not service.ready, 5)
            with pytest.raises(DatabaseNotReady):
                service.client()
            await sleep(0.5)
            assert sum(m.startswith("Database is down: ") for m in messages) == 2

            private_server.start()  # no persistence: an empty database again
            await within(service.whenReady())
            assert await service.client().get(keys.DB_VERSION) == "2"
            assert sum(m.startswith(connected) for m in messages) == 2
        finally:
            await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_a_redis_starting_with_the_daemon_is_not_reported_down(
    private_server: RedisServer,
) -> None:
    """A redis-server started at the same time (the private one, or a unit started alongside)
    refuses the first attempts; that is part of starting, not an outage worth an error."""
    service = RedisService(private_server.address, "", 0, (), "", reactor)
    pubsub = PubSubService(private_server.address, "", reactor)
    with captured_log() as messages:
        service.startService()
        pubsub.startService()
        try:
            await sleep(1.0)
            private_server.start()
            await within(service.whenReady())
            await within(pubsub.whenReady())
        finally:
            await within(pubsub.stopService())
            await within(service.stopService())
    assert [m for m in messages if "down" in m or "lost" in m] == [], messages


@pytest_twisted.ensureDeferred
async def test_password_is_sent_and_a_wrong_one_is_reported(
    private_server: RedisServer,
) -> None:
    private_server.password = "s3cret"
    private_server.start()
    wrong = RedisService(private_server.address, "nope", 0, (), "", reactor)
    with captured_log() as messages:
        wrong.startService()
        try:
            await eventually(lambda: any("Database is down" in m for m in messages), 5)
        finally:
            await within(wrong.stopService())
    assert not wrong.ready
    assert any("WRONGPASS" in m or "invalid password" in m for m in messages), messages

    right = RedisService(private_server.address, "s3cret", 2, (), "", reactor)
    right.startService()
    try:
        await within(right.whenReady())
        await right.client().set("k", "v")
    finally:
        await within(right.stopService())
    direct = redis.Redis(host=private_server.host, port=private_server.port, db=2,
                         password="s3cret", decode_responses=True)
    assert direct.get("k") == "v"
    assert direct.get(keys.DB_VERSION) == "2"


@pytest_twisted.ensureDeferred
async def test_unsupported_database_version_keeps_retrying_and_is_logged_once(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    redis_db.set(keys.DB_VERSION, "3")
    service = RedisService(redis_server.address, "", 0, (), "", reactor)
    with captured_log() as messages:
        service.startService()
        try:
            await sleep(1.5)
            assert not service.ready
            failed = [m for m in messages if "unsupported database version" in m]
            assert failed == [
                "Database check failed: unsupported database version, please upgrade mirrorbits"
            ]
            redis_db.set(keys.DB_VERSION, "2")
            await within(service.whenReady(), 5)
        finally:
            await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_reconfigure_moves_to_the_new_server(
    redis_server: RedisServer, redis_db: redis.Redis, private_server: RedisServer
) -> None:
    private_server.start()
    service = RedisService(redis_server.address, "", 0, (), "", reactor)
    service.startService()
    try:
        await within(service.whenReady())
        service.reconfigure(redis_server.address, "", 0, (), "")  # unchanged: nothing happens
        assert service.ready
        service.reconfigure(private_server.address, "", 0, (), "")
        await eventually(lambda: service.ready and service.address == private_server.address)
        await eventually(lambda: service.ready)
        await service.client().set("moved", "yes")
    finally:
        await within(service.stopService())
    other = redis.Redis(host=private_server.host, port=private_server.port, decode_responses=True)
    assert other.get("moved") == "yes"
    assert redis_db.get("moved") is None


@pytest.fixture
def sentinel(tmp_path: Path, private_server: RedisServer) -> Iterator[str]:
    """A real redis-sentinel monitoring ``private_server`` as ``mymaster``."""
    if shutil.which("redis-sentinel") is None:
        pytest.skip("redis-sentinel is not installed")
    private_server.start()
    watcher = SentinelServer(workdir=tmp_path / "sentinel", master=private_server)
    watcher.start()
    try:
        yield watcher.address
    finally:
        watcher.stop()


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    """A master, its replica and two sentinels."""
    if shutil.which("redis-sentinel") is None:
        pytest.skip("redis-sentinel is not installed")
    group = ReplicatedRedis.start(tmp_path / "group")
    yield group
    group.stop()


@pytest_twisted.ensureDeferred
async def test_sentinel_gives_the_master_address(
    sentinel: str, private_server: RedisServer, redis_server: RedisServer
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    # RedisAddress points elsewhere: the master must come from the (second) sentinel.
    service = RedisService(redis_server.address, "", 0, (dead, sentinel), "mymaster", reactor)
    with captured_log() as messages:
        service.startService()
        try:
            await within(service.whenReady())
            await service.client().set("via", "sentinel")
        finally:
            await within(service.stopService())
    assert any(f"Connected to redis master {private_server.address}" in m for m in messages)
    other = redis.Redis(host=private_server.host, port=private_server.port, decode_responses=True)
    assert other.get("via") == "sentinel"


@pytest_twisted.ensureDeferred
async def test_unknown_sentinel_master_falls_back_to_redis_address(
    sentinel: str, redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    service = RedisService(redis_server.address, "", 0, (sentinel,), "unknown", reactor)
    service.startService()
    try:
        await within(service.whenReady())
        await service.client().set("via", "address")
    finally:
        await within(service.stopService())
    assert redis_db.get("via") == "address"


@pytest_twisted.ensureDeferred
async def test_stop_is_prompt_from_a_ready_callback_and_while_down(
    redis_server: RedisServer, redis_db: redis.Redis, private_server: RedisServer
) -> None:
    service = RedisService(redis_server.address, "", 0, (), "", reactor)
    stopped: list[Deferred[None]] = []
    service.whenReady().addCallback(lambda _: stopped.append(service.stopService()))
    service.startService()
    await eventually(lambda: bool(stopped), 5)
    await within(stopped[0], 2)
    assert not service.running and not service.ready

    down = RedisService(private_server.address, "", 0, (), "", reactor)  # never started
    down.startService()
    await sleep(0.3)
    await within(down.stopService(), 2)


@pytest_twisted.ensureDeferred
async def test_a_master_turned_replica_is_left_and_taken_again_once_master(
    private_server: RedisServer,
) -> None:
    """Before, a master demoted in place (``REPLICAOF``, no connection closed) was only
    reported (``Database check failed``) and kept: every write was refused (READONLY).
    Meanwhile the replica is read (before, not even that: a Redis not a master was down),
    never written to."""
    private_server.start()
    db = private_server.client()
    service = RedisService(private_server.address, "", 0, (), "", reactor)
    with captured_log() as messages:
        service.startService()
        try:
            await within(service.whenReady())
            async with service.session() as lent:
                first = lent.generation
                assert not lent.expects_replica  # a lone master
            db.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
            await eventually(lambda: not service.ready, 5)
            assert any(m.startswith("Database is down: ") and "not a master (role: slave)" in m
                       for m in messages), messages
            await within(service.whenReadable())
            assert not service.ready
            assert await service.reading_client().get(keys.DB_VERSION) == "2"
            assert await service.read_client().hgetall(keys.MIRRORS) == {}
            with pytest.raises(DatabaseNotReady):
                service.client()
            assert sum("is a replica: read from" in m for m in messages) == 1, messages
            db.execute_command("REPLICAOF", "NO", "ONE")
            await within(service.whenReady())
            async with service.session() as lent:
                assert lent.generation == first + 1  # a new link: writers can tell
        finally:
            db.execute_command("REPLICAOF", "NO", "ONE")
            await within(service.stopService())
            db.close()


@pytest_twisted.ensureDeferred
async def test_sentinel_failover_moves_commands_and_pubsub_before_the_demotion(
    replicated: ReplicatedRedis,
) -> None:
    """The former master acts as a master for seconds after the sentinels switched; whatever
    it is given meanwhile is dropped when it resyncs. Both connections move at once."""
    sentinels = tuple(s.address for s in replicated.sentinels)
    nowhere = f"127.0.0.1:{free_port()}"
    service = RedisService(nowhere, "", 0, sentinels, "mymaster", reactor)
    pubsub = PubSubService(nowhere, "", reactor, sentinels=sentinels, master_name="mymaster")
    masters: list[str] = []
    service.on_master(lambda host, port: masters.append(f"{host}:{port}"))
    service.on_master(pubsub.follow_master)
    updates: list[str] = []
    pubsub.on_message(keys.CHANNEL_MIRROR_UPDATE, updates.append)
    service.startService()
    pubsub.startService()
    try:
        await within(service.whenReady())
        await within(pubsub.whenReady())
        async with service.session() as lent:
            assert lent.expects_replica  # the master has a replica: writes should WAIT
        with captured_log() as messages:
            old, new = replicated.failover()
            await eventually(lambda: service.ready and masters[-1] == new.address, 5)
            with old.client() as former:
                assert former.execute_command("ROLE")[0] == "master"  # not demoted yet
            assert any("Redis master moved: the sentinels name " + new.address in m
                       for m in messages), messages
            await service.client().set("where", "new")
            with new.client() as db:
                await eventually(lambda: db.execute_command(
                    "PUBSUB", "NUMSUB", keys.CHANNEL_MIRROR_UPDATE)[1] == 1, 5)
                assert db.publish(keys.CHANNEL_MIRROR_UPDATE, "7") == 1
            await eventually(lambda: updates == ["7"], 5)
            with old.client() as former:
                assert former.execute_command("ROLE")[0] == "master"
        assert masters == [old.address, new.address]
        with new.client() as db:
            assert db.get("where") == "new"
    finally:
        await within(pubsub.stopService())
        await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_reads_wait_for_the_master_early_in_an_outage(private_server: RedisServer) -> None:
    service = RedisService(private_server.address, "", 0, (), "", reactor)
    service.startService()
    try:
        with pytest.raises(DatabaseNotReady):
            service.reading_client()  # never connected: no waiting (fallbacks at once)
        private_server.start()
        await within(service.whenReady())
        assert service.reading_client() is service.client()
        private_server.stop()
        await eventually(lambda: not service.ready, 5)
        with pytest.raises(DatabaseNotReady):
            service.client()
        waiting = service.reading_client().get("k")  # waits for the master...
        private_server.start()
        with private_server.client() as db:
            db.set("k", "back")
        assert await within(waiting) == "back"  # ...and reads from it
        private_server.stop()
        await eventually(lambda: not service.ready, 5)
        late = service.reading_client().get("k")  # at most READ_WAIT seconds
        with pytest.raises(DatabaseNotReady):
            await within(late, 10)
    finally:
        await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_a_master_reached_through_redis_address_is_kept(
    sentinel: str, private_server: RedisServer, redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    """The sentinels name a master that does not answer: the daemon uses RedisAddress and
    stays there (it does not try to move to the sentinels' master every second)."""
    private_server.stop()  # the sentinels' master
    service = RedisService(redis_server.address, "", 0, (sentinel,), "mymaster", reactor)
    with captured_log() as messages:
        service.startService()
        try:
            await within(service.whenReady())
            await sleep(2.5)
            assert service.ready
        finally:
            await within(service.stopService())
    assert [m for m in messages if m.startswith("Connected to redis master")] == [
        f"Connected to redis master {redis_server.address} (version "
        f"{'.'.join(map(str, server_version(redis_server)))})"]
    assert not any("moved" in m for m in messages), messages
