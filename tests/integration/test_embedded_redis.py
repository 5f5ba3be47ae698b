"""The private redis-server of the zero-configuration start: started, restarted, stopped."""

from __future__ import annotations

import os
import shutil
import signal
import socket
from pathlib import Path

import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.task import deferLater

from mirrorbits.embedded_aof import has_append_only_file
from mirrorbits.embedded_redis import EmbeddedRedis, answers, plan_private_redis
from tests.logcapture import captured_log
from tests.servers import RedisServer, free_port


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    waited = 0.0
    while not predicate():  # type: ignore[operator]
        assert waited < timeout, "condition not reached in time"
        await deferLater(reactor, 0.05, lambda: None)
        waited += 0.05


def redis_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


@pytest_twisted.ensureDeferred
async def test_private_redis_is_supervised(tmp_path: Path) -> None:
    port = free_port()
    service = EmbeddedRedis("127.0.0.1", port, str(tmp_path / "redis"), reactor,
                            restart_delay=0.1)
    service.startService()
    try:
        await wait_for(lambda: answers("127.0.0.1", port))
        assert redis_ping(port) == b"+PONG\r\n"
        process = service._process
        assert process is not None and process.transport is not None
        os.kill(process.transport.pid, signal.SIGKILL)
        await wait_for(lambda: service._process is not None and service._process is not process)
        await wait_for(lambda: answers("127.0.0.1", port))
        assert redis_ping(port) == b"+PONG\r\n"
    finally:
        await service.stopService()
    await wait_for(lambda: not answers("127.0.0.1", port))
    assert (tmp_path / "redis").is_dir()


def test_the_port_is_chosen_once_and_recorded(tmp_path: Path) -> None:
    first = plan_private_redis(str(tmp_path / "data"))
    assert first.directory == str(tmp_path / "data" / "redis")
    assert (tmp_path / "data" / "redis" / "port").read_text() == f"{first.port}\n"
    assert plan_private_redis(str(tmp_path / "data")) == first
    # Something else took the port meanwhile: another one is chosen and recorded.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first.port))
        taken.listen()
        moved = plan_private_redis(str(tmp_path / "data"))
    assert moved.port != first.port and moved.running_pid is None
    assert (tmp_path / "data" / "redis" / "port").read_text() == f"{moved.port}\n"


@pytest_twisted.ensureDeferred
async def test_a_failing_server_is_restarted_less_often_and_said_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = EmbeddedRedis("127.0.0.1", port, str(tmp_path / "redis"), reactor,
                                restart_delay=0.1)
        with captured_log("mirrorbits.embedded_redis") as lines:
            service.startService()
            try:
                await deferLater(reactor, 2.5, lambda: None)  # restarts after .1, .2, .4, .8 s
            finally:
                stopping = service.stopService()
                if stopping is not None:
                    await stopping
    stopped = [line for line in lines if line.startswith("The private redis-server stopped")]
    assert len(stopped) == 1, lines
    assert "Address already in use" in stopped[0] or "bind" in stopped[0], stopped
    assert stopped[0].endswith("restarting it in 0.1 s")


@pytest_twisted.ensureDeferred
async def test_a_killed_server_is_said_killed_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    service = EmbeddedRedis("127.0.0.1", port, str(tmp_path / "redis"), reactor,
                            restart_delay=0.1)
    service.startService()
    try:
        pid_file = tmp_path / "redis" / "redis.pid"
        await wait_for(lambda: answers("127.0.0.1", port) and pid_file.exists()
                       and pid_file.read_text().strip().isdigit(), timeout=30)
        await wait_for(lambda: has_append_only_file(str(tmp_path / "redis")), timeout=30)
        with captured_log("mirrorbits.embedded_redis") as lines:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
            await wait_for(lambda: bool(lines) and answers("127.0.0.1", port), timeout=30)
    finally:
        stopping = service.stopService()
        if stopping is not None:
            await stopping
    assert lines == ["The private redis-server was killed (signal 9): changes of its last "
                     "second at most are lost; restarting it in 0.1 s"], lines


@pytest_twisted.ensureDeferred
async def test_a_server_that_cannot_save_does_not_hold_the_stop(tmp_path: Path) -> None:
    """Its data directory removed, redis-server refuses to exit on SIGTERM: killed, said."""
    port = free_port()
    service = EmbeddedRedis("127.0.0.1", port, str(tmp_path / "redis"), reactor,
                            stop_timeout=1.0)
    service.startService()
    await wait_for(lambda: answers("127.0.0.1", port))
    shutil.rmtree(tmp_path / "redis")
    with captured_log("mirrorbits.embedded_redis") as lines:
        stopping = service.stopService()
        assert stopping is not None
        await stopping
    assert not answers("127.0.0.1", port)
    assert len(lines) == 1 and lines[0].startswith(
        "The private redis-server did not stop within 1 s ("), lines
    assert lines[0].endswith(": killing it; changes since its last snapshot (at most a minute)"
                             " are lost"), lines


def private_client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=10)


async def stop(service: EmbeddedRedis) -> None:
    stopping = service.stopService()
    if stopping is not None:
        await stopping


@pytest_twisted.ensureDeferred
async def test_a_write_a_second_before_a_kill_survives_it(tmp_path: Path) -> None:
    """The append-only file, synced every second, keeps what the minute's snapshot has not."""
    port = free_port()
    directory = tmp_path / "redis"
    service = EmbeddedRedis("127.0.0.1", port, str(directory), reactor, restart_delay=0.1)
    service.startService()
    try:
        await wait_for(lambda: has_append_only_file(str(directory)), timeout=30)
        with private_client(port) as client:
            client.hset("STATS_FILE_2026_12_05", "/a.iso", 1)
            client.incr("downloads")
        await deferLater(reactor, 1.5, lambda: None)
        assert not (directory / "dump.rdb").exists()  # no snapshot holds the writes
        process = service._process
        assert process is not None and process.transport is not None
        os.kill(process.transport.pid, signal.SIGKILL)
        await wait_for(lambda: service._process not in (None, process), timeout=30)
        await wait_for(lambda: answers("127.0.0.1", port), timeout=30)
        with private_client(port) as client:
            await wait_for(lambda: client.ping(), timeout=30)
            assert client.hget("STATS_FILE_2026_12_05", "/a.iso") == "1"
            assert client.get("downloads") == "1"
            assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        await stop(service)


@pytest_twisted.ensureDeferred
async def test_a_snapshot_of_an_earlier_version_is_kept_and_gets_an_append_only_file(
        tmp_path: Path) -> None:
    """A directory holding only ``dump.rdb`` (``--appendonly no`` before): its data is loaded,
    then written to an append-only file, which the next start loads."""
    directory = tmp_path / "redis"
    earlier = RedisServer(directory, extra_args=["--save", "60 1"])
    earlier.start()
    try:
        with earlier.client() as client:
            client.hset("MIRRORS_KEY", "m1", "1")
            client.set("downloads", "41")
            client.save()
    finally:
        earlier.stop()
    assert sorted(os.listdir(directory)) == ["dump.rdb"]
    port = free_port()
    service = EmbeddedRedis("127.0.0.1", port, str(directory), reactor)
    service.startService()
    try:
        await wait_for(lambda: has_append_only_file(str(directory)), timeout=30)
        with private_client(port) as client:
            assert client.get("downloads") == "41"
            client.incr("downloads")
    finally:
        await stop(service)
    (directory / "dump.rdb").unlink()  # the next start loads the append-only file
    service = EmbeddedRedis("127.0.0.1", port, str(directory), reactor)
    service.startService()
    try:
        await wait_for(lambda: answers("127.0.0.1", port), timeout=30)
        with private_client(port) as client:
            await wait_for(lambda: client.ping(), timeout=30)
            assert client.hget("MIRRORS_KEY", "m1") == "1"
            assert client.get("downloads") == "42"
            assert client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        await stop(service)
