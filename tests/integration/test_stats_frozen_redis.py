"""Statistics against a real redis-server frozen with SIGSTOP.

``test_stats.py::test_a_silent_redis_stalls_flushes_and_stop_is_bounded`` stands a silent TCP
server in for a Redis that stopped answering; this is the same behaviour against a real
redis-server, stopped with SIGSTOP and resumed with SIGCONT. The flush loop runs on a Clock.
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
import txredisapi
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from zope.interface import provider

from mirrorbits.stats import StatsService
from mirrorbits.store import keys
from tests.integration.store_support import eventually, within
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

KEPT = "Uncommited stats kept in-memory"
NOW = 1795608000.0  # 2026-11-25 12:00 UTC


@pytest.fixture
def frozen_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


@pytest.fixture
def stats_log() -> Iterator[list[str]]:
    messages: list[str] = []

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "mirrorbits.stats":
            messages.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield messages
    globalLogPublisher.removeObserver(observe)


@pytest_twisted.ensureDeferred
async def test_a_frozen_redis_stalls_flushes_and_stop_is_bounded(
    frozen_redis: RedisServer, stats_log: list[str]
) -> None:
    conn = await within(txredisapi.Connection(frozen_redis.host, frozen_redis.port, dbid=0,
                                              convertNumbers=False))
    clock = Clock()
    clock.advance(NOW)
    service = StatsService(lambda: conn, clock)
    service.startService()
    assert frozen_redis.process is not None
    pid = frozen_redis.process.pid
    try:
        os.kill(pid, signal.SIGSTOP)
        service.count_download(1, "/a", 1)
        clock.advance(0.5)  # the flush is sent, never answered
        service.count_download(1, "/a", 1)
        for _ in range(9):
            clock.advance(0.5)
        assert [m for m in stats_log if KEPT in m] == []
        clock.advance(0.5)  # 5 s without an answer
        assert [m for m in stats_log if KEPT in m] == [f"{KEPT}: Redis has not answered for 5 s"]
        assert service.pending_downloads() == 2
        stopped = service.stopService()
        assert not stopped.called
        clock.advance(service.stop_timeout)
        await within(stopped)
        assert "Could not commit 2 download(s) at shutdown" in stats_log
    finally:
        os.kill(pid, signal.SIGCONT)
        await conn.disconnect()
    db = redis.Redis(host=frozen_redis.host, port=frozen_redis.port, decode_responses=True)
    try:
        # What was sent before the freeze runs once Redis resumes; nothing is counted twice.
        await eventually(lambda: db.ping())
        assert int(db.get(keys.STATS_TOTAL) or 0) <= 2
    finally:
        db.close()
