# mypy: disable-error-code="untyped-decorator,import-untyped"
"""Hostile HTTP mirrors (real processes on loopback): every answer read from a mirror is capped,
a trace follows redirects as a health check does.

The mirror is ``tests/hostile_http.py`` in its own process; it reports how many bytes it
managed to send before the client gave up, which shows how much the client read.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mirrorbits.config import Config
from mirrorbits.health import HealthChecker
from mirrorbits.health.probe import make_agent
from mirrorbits.model import Mirror
from mirrorbits.scan.trace import fetch_trace
from mirrorbits.store import keys
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.integration.conftest import StartHostile
from tests.integration.store_support import captured_log, eventually, within
from tests.integration.test_rsync_scan import client

pytestmark = pytest.mark.integration

__all__ = ["client"]  # fixture

PATH = "/pool/file.deb"
#: What the client may have made the mirror send, at most: its cap plus what the kernel's
#: socket buffers on both sides take in before the connection is aborted (a few MiB).
SENT_BOUND = 32 * 1024 * 1024


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(1795571680.0)
    return clock


@pytest_twisted.ensureDeferred
async def test_a_huge_trace_file_is_abandoned_and_the_known_stamp_kept(
    client: Any, redis_db: redis.Redis, hostile: StartHostile,
) -> None:
    server = hostile("http", "huge", "127.0.0.2")
    redis_db.hset(keys.mirror(1), "lastModTime", "1600000000")  # known good
    mirror = Mirror(id=1, name="m1", http_url=server.url + "/")
    began = time.monotonic()
    with captured_log("mirrorbits.scan") as lines:
        stamp = await within(Deferred.fromCoroutine(
            fetch_trace(reactor, client, mirror, "trace")), 20)
    assert stamp is None
    assert time.monotonic() - began < 10
    assert lines == ["[m1] fetching trace file failed: answer larger than 128 KiB"]
    assert redis_db.hget(keys.mirror(1), "lastModTime") == "1600000000"
    await eventually(lambda: len(server.sent()) == 1)
    [sent] = server.sent()
    assert sent < SENT_BOUND  # of the 200 MiB offered


@pytest.mark.parametrize(("mode", "said"), [
    # A body after a HEAD answer is never read: the 200 counts, its length is reported (and
    # the file, of the wrong size there, is dropped from that mirror: docs/freshness.md).
    ("huge", ["flood: /pool/file.deb differs there (209715200 bytes instead of 10): no "
              "longer sent to this mirror until a scan finds it again",
              "flood     HTTP  File size mismatch! [/pool/file.deb]"]),
    ("headers", ["flood     HTTP  Error: answer larger than 64 KiB (0ms)"]),
])
@pytest_twisted.ensureDeferred
async def test_a_health_check_reads_no_more_than_64_kib(
    mode: str, said: list[str], store: MirrorStore, service: RedisService, redis_db: redis.Redis,
    clock: Clock, hostile: StartHostile,
) -> None:
    server = hostile("http", mode, "127.0.0.3")
    mirror = await store.add_mirror(Mirror(name="flood", http_url=server.url))
    await store.set_enabled(mirror.id, True)
    redis_db.hset(keys.file(PATH), mapping={"size": "10"})
    redis_db.sadd(keys.handled_files(mirror.id), PATH)
    checker = HealthChecker(Config, service.client, store, clock,
                            agent_factory=lambda admit: make_agent(reactor, admit),
                            timeout=20.0)
    with captured_log("mirrorbits.health") as lines:
        checker.startService()
        await within(checker.when_idle(), 30)
    checker.stopService()
    assert lines == said
    up, reason = ("1", "") if mode == "huge" else ("0", "Answer too large")
    assert redis_db.hmget(keys.mirror(mirror.id), ["httpUp", "httpDownReason"]) == [up, reason]
    await eventually(lambda: len(server.sent()) == 1)
    [sent] = server.sent()
    assert sent < SENT_BOUND


class _Redirecting(Resource):
    """``/trace`` redirects to ``target``; ``/here`` is the trace file."""

    isLeaf = True

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/trace":
            request.redirect(self.target.encode())
            return b"moved"
        return b"1700000000\n"


@pytest_twisted.ensureDeferred
async def test_a_trace_follows_redirects_as_a_health_check_does(
    client: Any, redis_db: redis.Redis,
) -> None:
    elsewhere = _Redirecting("")
    port_b: Any = reactor.listenTCP(0, Site(elsewhere), interface="127.0.0.58")
    other = f"http://127.0.0.58:{port_b.getHost().port}/here"
    moved = _Redirecting(other)
    port_a: Any = reactor.listenTCP(0, Site(moved), interface="127.0.0.57")
    base = f"http://127.0.0.57:{port_a.getHost().port}"
    mirror = Mirror(id=1, name="m1", http_url=base + "/")
    try:
        with captured_log("mirrorbits") as lines:
            assert await fetch_trace(reactor, client, mirror, "trace") is None
        problem = "redirect to another host (127.0.0.58) refused: not in AllowRedirectHosts"
        assert f"[m1] fetching trace file failed: {problem}" in lines
        assert redis_db.hget(keys.mirror(1), "lastModTime") is None
        assert await fetch_trace(reactor, client, mirror, "trace",
                                 other_hosts=("127.0.0.58",)) == 1700000000
        moved.target = base + "/here"  # the same host: followed
        redis_db.delete(keys.mirror(1))
        assert await fetch_trace(reactor, client, mirror, "trace") == 1700000000
    finally:
        await port_a.stopListening()
        await port_b.stopListening()
