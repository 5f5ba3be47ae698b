"""PubSubService against a real redis-server: messages, password, reconnection, keepalive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from mirrorbits.store import keys
from mirrorbits.store.pubsub import MESSAGES_PER_TURN, PubSubService, publish
from tests.integration.store_support import (
    captured_log,
    eventually,
    sleep,
    started_service,
    within,
)
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir=tmp_path / "redis", port=free_port(), password="pw")
    server.start()
    yield server
    server.stop()


def sync_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, password=server.password or None,
                       decode_responses=True)


@pytest_twisted.ensureDeferred
async def test_messages_of_all_four_channels_arrive_as_text(private_server: RedisServer) -> None:
    service = PubSubService(private_server.address, "pw", reactor)
    assert service.name == "pubsub"
    got: list[tuple[str, str]] = []
    for channel in keys.ALL_CHANNELS:
        service.on_message(channel, lambda m, c=channel: got.append((c, m)))
    also: list[str] = []
    service.on_message(keys.CHANNEL_MIRROR_UPDATE, also.append)
    service.startService()
    try:
        await within(service.whenReady())
        client = sync_client(private_server)
        client.publish(keys.CHANNEL_MIRROR_UPDATE, "1")
        client.publish(keys.CHANNEL_FILE_UPDATE, "/dir/b.bin")
        client.publish(keys.CHANNEL_MIRROR_FILE_UPDATE, "3 /guía rápida.pdf")
        client.publish(keys.CHANNEL_CLUSTER, "HELLO0 node-1")
        client.publish("_not_ours", "x")
        await eventually(lambda: len(got) == 4, 5)
    finally:
        await within(service.stopService())
    assert got == [
        (keys.CHANNEL_MIRROR_UPDATE, "1"),
        (keys.CHANNEL_FILE_UPDATE, "/dir/b.bin"),
        (keys.CHANNEL_MIRROR_FILE_UPDATE, "3 /guía rápida.pdf"),
        (keys.CHANNEL_CLUSTER, "HELLO0 node-1"),
    ]
    assert also == ["1"]
    assert type(got[0][1]) is str


@pytest_twisted.ensureDeferred
async def test_restart_resubscribes_and_calls_on_reconnect(private_server: RedisServer) -> None:
    service = PubSubService(private_server.address, "pw", reactor)
    got: list[str] = []
    reconnects: list[str] = []
    service.on_message(keys.CHANNEL_FILE_UPDATE, got.append)
    service.on_reconnect(lambda: reconnects.append("first"))
    service.on_reconnect(lambda: reconnects.append("second"))
    with captured_log() as messages:
        service.startService()
        try:
            await within(service.whenReady())
            assert reconnects == []  # the first subscription is no reconnection
            private_server.restart()
            await eventually(lambda: reconnects == ["first", "second"], 10)
            assert service.subscribed
            sync_client(private_server).publish(keys.CHANNEL_FILE_UPDATE, "/after")
            await eventually(lambda: got == ["/after"], 5)
        finally:
            await within(service.stopService())
    assert sum(m.startswith("Pub/sub connection lost") for m in messages) == 1, messages
    assert any(m.startswith("Pub/sub subscribed again on ") for m in messages)


@pytest_twisted.ensureDeferred
async def test_unanswered_ping_drops_a_silent_connection(private_server: RedisServer) -> None:
    service = PubSubService(private_server.address, "pw", reactor,
                            ping_interval=0.2, ping_timeout=0.3)
    reconnects: list[None] = []
    service.on_reconnect(lambda: reconnects.append(None))
    with captured_log() as messages:
        service.startService()
        try:
            await within(service.whenReady())
            # The server stays up but answers nothing for 1.5 s: only PING can tell.
            sync_client(private_server).execute_command("CLIENT", "PAUSE", "1500", "ALL")
            await eventually(lambda: any("PING failed" in m for m in messages), 5)
            await eventually(lambda: len(reconnects) == 1, 10)
        finally:
            await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_a_busy_reactor_is_not_a_dead_connection(private_server: RedisServer) -> None:
    """The answer to a PING waits unread while the process is busy (here each message takes
    0.5 s to handle, as a storm of them or a cache fill might): the connection, and every
    cache it keeps, must not be dropped for that."""
    service = PubSubService(private_server.address, "pw", reactor,
                            ping_interval=0.2, ping_timeout=0.3)
    reconnects: list[None] = []
    handled: list[str] = []
    service.on_reconnect(lambda: reconnects.append(None))
    service.on_message(keys.CHANNEL_FILE_UPDATE, lambda m: (handled.append(m), time.sleep(0.5)))
    with captured_log() as messages:
        service.startService()
        try:
            await within(service.whenReady())
            client = sync_client(private_server)
            for n in range(6):
                client.publish(keys.CHANNEL_FILE_UPDATE, f"/f{n}")
                await sleep(0.1)
            await eventually(lambda: len(handled) == 6, 10)
            await sleep(0.5)
            assert reconnects == [] and not any("PING failed" in m for m in messages)
        finally:
            await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_a_storm_of_messages_arrives_whole_in_order_and_pings_are_answered(
    private_server: RedisServer,
) -> None:
    """The subscriber reads the replies itself, many in one read: 20,000 messages published
    in pipelines (as a scan commits) each arrive once, whole and in order, among the answers
    to its PINGs (none missed: the connection is kept)."""
    service = PubSubService(private_server.address, "pw", reactor,
                            ping_interval=0.05, ping_timeout=1.0)
    reconnects: list[None] = []
    got: list[str] = []
    service.on_reconnect(lambda: reconnects.append(None))
    service.on_message(keys.CHANNEL_FILE_UPDATE, got.append)
    sent = [f"/dir {n}/fíle-{n}.\u00e9\r\n{'x' * (n % 300)}" for n in range(20_000)]
    with captured_log() as messages:
        service.startService()
        try:
            await within(service.whenReady())
            client = sync_client(private_server)
            for start in range(0, len(sent), 1000):
                pipe = client.pipeline(transaction=False)
                for path in sent[start:start + 1000]:
                    pipe.publish(keys.CHANNEL_FILE_UPDATE, path)
                pipe.execute()
                await sleep(0.02)
            await eventually(lambda: len(got) == len(sent), 20)
            await sleep(0.3)  # a few more PINGs
            assert got == sent
            assert reconnects == [] and not any("PING" in m for m in messages)
            assert service.subscribed
        finally:
            await within(service.stopService())


@pytest_twisted.ensureDeferred
async def test_a_storm_is_handed_on_a_few_hundred_messages_per_reactor_turn(
    private_server: RedisServer,
) -> None:
    """A read holding a thousand messages is not handed on in one go: the requests of the
    process are answered between (each turn here is marked by a call at the next one)."""
    service = PubSubService(private_server.address, "pw", reactor)
    turns: list[int] = []
    turn = [0]
    marked = [False]

    def next_turn() -> None:
        turn[0] += 1
        marked[0] = False

    def handle(_: str) -> None:
        turns.append(turn[0])
        if not marked[0]:
            marked[0] = True
            reactor.callLater(0, next_turn)

    service.on_message(keys.CHANNEL_FILE_UPDATE, handle)
    service.startService()
    try:
        await within(service.whenReady())
        pipe = sync_client(private_server).pipeline(transaction=False)
        for n in range(3000):
            pipe.publish(keys.CHANNEL_FILE_UPDATE, f"/{n}")
        pipe.execute()
        await eventually(lambda: len(turns) == 3000, 10)
    finally:
        await within(service.stopService())
    per_turn = [turns.count(value) for value in set(turns)]
    assert max(per_turn) <= 2 * MESSAGES_PER_TURN  # a tie of the two calls may join two
    assert len(per_turn) >= 3000 // (2 * MESSAGES_PER_TURN)


@pytest_twisted.ensureDeferred
async def test_wrong_password_keeps_retrying_until_reconfigured(
    private_server: RedisServer,
) -> None:
    service = PubSubService(private_server.address, "wrong", reactor)
    with captured_log() as messages:
        service.startService()
        try:
            await eventually(lambda: any("Pub/sub connection lost" in m for m in messages), 5)
            assert not service.subscribed
            service.reconfigure(private_server.address, "pw")
            await within(service.whenReady())
        finally:
            await within(service.stopService())
    assert sum("Pub/sub connection lost" in m for m in messages) == 1


@pytest_twisted.ensureDeferred
async def test_publish_helper_reaches_the_subscriber(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    redis_service = await started_service(redis_server)
    subscriber = PubSubService(redis_server.address, "", reactor)
    got: list[str] = []
    subscriber.on_message(keys.CHANNEL_MIRROR_UPDATE, got.append)
    subscriber.startService()
    try:
        await within(subscriber.whenReady())
        receivers = await publish(redis_service.client(), keys.CHANNEL_MIRROR_UPDATE, "12")
        assert receivers >= 1
        await eventually(lambda: got == ["12"], 5)
    finally:
        await within(subscriber.stopService())
        await within(redis_service.stopService())


@pytest_twisted.ensureDeferred
async def test_stop_is_prompt_from_a_ready_callback(private_server: RedisServer) -> None:
    service = PubSubService(private_server.address, "pw", reactor)
    stopped: list[Deferred[None]] = []
    service.whenReady().addCallback(lambda _: stopped.append(service.stopService()))
    service.startService()
    await eventually(lambda: bool(stopped), 5)
    await within(stopped[0], 2)
    assert not service.subscribed
    client = sync_client(private_server)
    await eventually(lambda: client.client_list(_type="pubsub") == [], 2)
