"""The real daemon on the recorded conformance scenario, shared by the HTTP conformance tests.

One daemon per test session, on a private redis-server: other tests flush the session's
``redis_server`` (fixture ``redis_db``), which must not wipe the recorded snapshot.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_twisted
import redis
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from zope.interface import provider

from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.daemon import DaemonProcess
from tests.integration.store_support import started_service, within
from tests.scenario import build_repository, conformance_config, load_redis
from tests.servers import HostileServer, RedisServer, free_port

CONFORMANCE_RPC_PASSWORD = "conformance-rpc"
# A checksum answer proves Redis is connected and the snapshot readable (the daemon waits
# for Redis before serving, but at most 2 s, then answers fallbacks until it is up).
READY_PATH = "/pool/main/tool_2.4.1_arm64.deb?md5"


def start_conformance_daemon(root: Path, redis_server: RedisServer) -> DaemonProcess:
    """Lay out the scenario under ``root``, load the snapshot into DB 3, start the daemon.

    The download log goes to ``root / "logs"``; returns once the daemon answers from Redis.
    """
    repo = build_repository(root)
    logs = root / "logs"
    logs.mkdir()
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=3,
                         decode_responses=True)
    load_redis(client)
    client.close()
    http_address = f"127.0.0.1:{free_port()}"
    rpc_address = f"127.0.0.1:{free_port()}"
    daemon = DaemonProcess(
        workdir=root / "daemon",
        values={"ListenAddress": http_address, "RPCListenAddress": rpc_address,
                "RPCPassword": CONFORMANCE_RPC_PASSWORD},
        args=["--no-monitor"],
        config_text=conformance_config(repo, logs, redis_server.address, http_address,
                                       rpc_address),
    )
    daemon.start()
    try:
        wait_ready(daemon)
    except AssertionError:
        daemon.stop()
        raise
    return daemon


def wait_ready(daemon: DaemonProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status, _, _ = request(daemon, "GET", READY_PATH, {})
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon never read Redis ({status}):\n{daemon.log()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def conformance_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(workdir=Path(tmp_path_factory.mktemp("conformance-redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def conformance_daemon(
    conformance_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    daemon = start_conformance_daemon(Path(tmp_path_factory.mktemp("conformance")),
                                      conformance_redis)
    yield daemon
    daemon.stop()


def request(daemon: DaemonProcess, method: str, path: str,
            headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request on a fresh connection; the path is percent-encoded only where HTTP needs it."""
    host, port = daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, quote(path, safe="/?&=:-._~%+"), headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, response.getheaders(), body
    finally:
        connection.close()


def header_values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name.lower()]


def raw_header(value: str) -> str:
    """http.client decodes header bytes as latin-1: give back the UTF-8 text."""
    return value.encode("latin-1").decode("utf-8")


@pytest_twisted.async_yield_fixture
async def service(redis_server: RedisServer, redis_db: redis.Redis) -> AsyncIterator[RedisService]:
    """A started RedisService on the test Redis (stopped afterwards)."""
    started = await started_service(redis_server)
    yield started
    await within(started.stopService())


@pytest.fixture
def store(service: RedisService, clock: Clock) -> MirrorStore:
    """A MirrorStore on :func:`service`; each test module provides its ``clock``."""
    return MirrorStore(service, clock)


StartHostile = Callable[[str, str, str], HostileServer]


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[StartHostile]:
    """``hostile(kind, mode, host)`` starts a :class:`HostileServer`; all stop after the test."""
    started: list[HostileServer] = []

    def start(kind: str, mode: str, host: str) -> HostileServer:
        server = HostileServer(kind, mode, tmp_path / f"{kind}-{mode}-{host}.sent", host)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def stats_log() -> Iterator[list[str]]:
    """Messages logged by mirrorbits.stats during the test."""
    messages: list[str] = []

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "mirrorbits.stats":
            messages.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield messages
    globalLogPublisher.removeObserver(observe)
