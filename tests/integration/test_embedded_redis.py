"""The private redis-server of the zero-configuration start: started, restarted, stopped."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from mirrorbits.embedded_redis import EmbeddedRedis, answers
from tests.servers import free_port


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
