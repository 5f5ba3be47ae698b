# mypy: disable-error-code="untyped-decorator,import-untyped"
"""Mirrors that refuse the checker, not the users: real HTTP servers on loopback that answer
``HEAD`` with 403 or 405 and a ranged ``GET`` with 206, or answer 429 (``Retry-After``) for a
while; a real redis-server; the scheduling on a ``Clock`` (so rechecks are explicit)."""

from __future__ import annotations

from email.utils import formatdate

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
from mirrorbits.health.freshness import FreshnessChecker, holds_version
from mirrorbits.health.kept import KeptConnections
from mirrorbits.health.outcome import file_url
from mirrorbits.health.verify import FileVerifier
from mirrorbits.model import FileInfo
from mirrorbits.store import keys
from mirrorbits.store.mirrors import MirrorStore, read_mirror
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import captured_log, within
from tests.integration.test_health import (
    PATH,
    SIZE,
    add_mirror,
    checker_for,
    clock,
    first_round,
    ports,
    serve,
    state,
    state_changes,
)

pytestmark = pytest.mark.integration
__all__ = ["clock", "ports"]  # fixtures


@define
class GuardedSite(Resource):
    """A mirror behind a WAF or CDN: ``HEAD`` answers ``head_status``; ``GET`` serves the
    file (a 206 for ``Range: bytes=0-0`` unless ``ignore_range``); ``statuses``, while any
    remain, answer every request first (with ``Retry-After: retry_after``)."""

    head_status: int = 200
    ignore_range: bool = False
    size: int = SIZE
    statuses: list[int] = field(factory=list)
    retry_after: str = ""
    last_modified: str = ""
    seen: list[tuple[str, str]] = field(factory=list)  # (method, Range)
    isLeaf = True

    def __attrs_post_init__(self) -> None:
        Resource.__init__(self)

    def render(self, request: Request) -> bytes:
        method = request.method.decode()
        asked = (request.getHeader(b"range") or b"").decode()
        self.seen.append((method, asked))
        if self.statuses:
            request.setResponseCode(self.statuses.pop(0))
            if self.retry_after:
                request.setHeader(b"retry-after", self.retry_after.encode())
            return b""
        if method == "HEAD" and self.head_status != 200:
            request.setResponseCode(self.head_status)
            return b""
        if self.last_modified:
            request.setHeader(b"last-modified", self.last_modified.encode())
        if asked == "bytes=0-0" and not self.ignore_range:
            request.setResponseCode(206)
            request.setHeader(b"content-range", f"bytes 0-0/{self.size}".encode())
            return b"x"
        return b"x" * self.size


@pytest.mark.parametrize("refusal", [403, 405])
@pytest_twisted.ensureDeferred
async def test_a_mirror_refusing_head_is_checked_with_a_ranged_get(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort], refusal: int,
) -> None:
    site = GuardedSite(head_status=refusal)
    mirror = await add_mirror(store, redis_db, "guarded", serve(ports, site, "127.0.0.71"))
    checker = checker_for(service, store, clock)
    with captured_log("mirrorbits.health") as said:
        await first_round(checker)
        assert state(redis_db, mirror.id)["httpUp"] == "1"
        assert state_changes(redis_db, mirror.id) == [{"Proto": 1, "Up": True, "Reason": ""}]
        clock.advance(61)
        await within(checker.when_idle())
    checker.stopService()
    # the next check goes straight to the ranged GET
    assert site.seen == [("HEAD", ""), ("GET", "bytes=0-0"), ("GET", "bytes=0-0")]
    assert said.count(f"guarded: HEAD answered {refusal}, a ranged GET 206: checked with GET "
                      "(Range: bytes=0-0) from now on") == 1
    assert state(redis_db, mirror.id)["httpUp"] == "1"


@pytest_twisted.ensureDeferred
async def test_a_ranged_get_of_the_wrong_size_or_refused_too(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    # a mirror ignoring Range sends the whole file (200): read no further than a few bytes
    whole = GuardedSite(head_status=403, ignore_range=True, size=8 * 1024 * 1024)
    # a WAF refusing the GET as well: the mirror is down, as before
    walled = GuardedSite(head_status=403, statuses=[])
    big = await add_mirror(store, redis_db, "whole", serve(ports, whole, "127.0.0.72"),
                           path="/big.iso")
    redis_db.hset(keys.file("/big.iso"), "size", str(whole.size))
    refused = await add_mirror(store, redis_db, "walled", serve(ports, walled, "127.0.0.73"))

    def render_walled(request: Request) -> bytes:
        walled.seen.append((request.method.decode(), ""))
        request.setResponseCode(403)
        return b""

    walled.render = render_walled  # type: ignore[method-assign]
    checker = checker_for(service, store, clock)
    await first_round(checker)
    checker.stopService()
    assert state(redis_db, big.id)["httpUp"] == "1"
    assert redis_db.sismember(keys.handled_files(big.id), "/big.iso")  # its size was right
    assert whole.seen == [("HEAD", ""), ("GET", "bytes=0-0")]
    assert state(redis_db, refused.id)["httpDownReason"] == "Got status code 403"
    assert [method for method, _ in walled.seen] == ["HEAD", "GET"]


@pytest_twisted.ensureDeferred
async def test_a_rate_limited_mirror_keeps_its_state_and_is_asked_after_retry_after(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = GuardedSite()
    mirror = await add_mirror(store, redis_db, "limited", serve(ports, site, "127.0.0.74"))
    checker = checker_for(service, store, clock)
    with captured_log("mirrorbits.health") as said:
        await first_round(checker)
        site.statuses, site.retry_after = [429, 429], "120"
        for _ in range(2):  # 429, then 429 again 120 s later (not at the 1-minute interval)
            clock.advance(61)
            await within(checker.when_idle())
            asked = len(site.seen)
            clock.advance(30)
            await within(checker.when_idle())
            assert len(site.seen) == asked  # Retry-After: 120 honoured
            clock.advance(30)
            await within(checker.when_idle())
            assert state(redis_db, mirror.id)["httpUp"] == "1"
        site.retry_after = ""
        clock.advance(121)
        await within(checker.when_idle())  # 200 again
    assert len(site.seen) == 4
    assert state(redis_db, mirror.id)["httpUp"] == "1"
    assert state_changes(redis_db, mirror.id) == [{"Proto": 1, "Up": True, "Reason": ""}]
    prefix = f"{'limited':<{len('limited') + 4}} HTTP "
    assert [line for line in said if "429" in line] == [
        f"{prefix} Rate limited! Status: 429 (state kept: down at 3 in a row or after 10 min)"]

    # refusing the checker three checks in a row: down, saying why
    site.statuses, site.retry_after = [429, 429, 429], "Wed, 01 Jan 2020 00:00:00 GMT"
    with captured_log("mirrorbits.health") as said:
        for _ in range(3):
            clock.advance(61)
            await within(checker.when_idle())
    checker.stopService()
    assert state(redis_db, mirror.id)["httpDownReason"] == (
        "Rate limited (error 429) for 3 checks in a row")
    assert state_changes(redis_db, mirror.id)[-1] == {
        "Proto": 1, "Up": False, "Reason": "Rate limited (error 429) for 3 checks in a row"}
    assert [line for line in said if "429" in line] == [
        f"{prefix} Rate limited! Status: 429 (state kept: down at 3 in a row or after 10 min)",
        f"{prefix} Down! Status: 429 (rate limited): 3 checks in a row in 122 s"]


@pytest_twisted.ensureDeferred
async def test_a_503_is_down_at_once_and_its_retry_after_honoured(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = GuardedSite()
    mirror = await add_mirror(store, redis_db, "maintained", serve(ports, site, "127.0.0.75"))
    checker = checker_for(service, store, clock)
    await first_round(checker)
    site.statuses, site.retry_after = [503], "3600"  # at most 10 minutes are honoured
    clock.advance(61)
    await within(checker.when_idle())
    assert state(redis_db, mirror.id)["httpDownReason"] == "Got status code 503"
    clock.advance(500)
    await within(checker.when_idle())
    assert len(site.seen) == 2
    clock.advance(101)
    await within(checker.when_idle())
    checker.stopService()
    assert len(site.seen) == 3
    assert state(redis_db, mirror.id)["httpUp"] == "1"


@pytest_twisted.ensureDeferred
async def test_the_file_verification_asks_a_mirror_refusing_head_with_a_ranged_get(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = GuardedSite(head_status=405, size=SIZE + 1)  # its copy differs: a lost file
    mirror = await add_mirror(store, redis_db, "guarded", serve(ports, site, "127.0.0.76"))
    redis_db.hset(keys.mirror(mirror.id), "httpUp", "1")
    redis_db.hset(keys.file_info(mirror.id, PATH), mapping={"size": str(SIZE)})
    lost: list[tuple[str, str]] = []
    verifier = FileVerifier(lambda: Config(), service.client, store, clock,
                            lambda m, path, why: lost.append((path, why)),
                            connections=KeptConnections(reactor))
    verifier.startService()
    try:
        up = await read_mirror(service.client(), mirror.id)
        assert up is not None and up.http_up
        for _ in range(2):  # two verifications: the second one goes straight to the GET
            await verifier._verify(up, PATH)
    finally:
        verifier.stopService()
    assert site.seen == [("HEAD", ""), ("GET", "bytes=0-0"), ("GET", "bytes=0-0")]
    assert lost == [(PATH, f"{SIZE + 1} bytes instead of {SIZE}")] * 2


@pytest_twisted.ensureDeferred
async def test_the_freshness_check_reads_a_new_version_with_a_ranged_get(
    service: RedisService, ports: list[IListeningPort],
) -> None:
    modified = 1_687_249_800
    site = GuardedSite(head_status=403, last_modified=formatdate(modified, usegmt=True))
    base = serve(ports, site, "127.0.0.77")
    checker = FreshnessChecker(lambda: Config(), service.client, reactor)
    answer = await checker._head(file_url(base, PATH), True, "guarded", (1, 1))
    assert answer == (206, str(SIZE), site.last_modified)
    assert holds_version(FileInfo(PATH, SIZE, modified * 1_000_000_000), *answer)
    assert await checker._head(file_url(base, PATH), True, "guarded", (1, 1)) == answer
    assert [method for method, _ in site.seen] == ["HEAD", "GET", "GET"]


@pytest_twisted.ensureDeferred
async def test_the_file_verification_leaves_a_rate_limiting_mirror_alone(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = GuardedSite(statuses=[429], retry_after="30")
    mirror = await add_mirror(store, redis_db, "limited", serve(ports, site, "127.0.0.78"))
    redis_db.hset(keys.mirror(mirror.id), "httpUp", "1")
    redis_db.hset(keys.file_info(mirror.id, PATH), mapping={"size": str(SIZE)})
    verifier = FileVerifier(lambda: Config(), service.client, store, clock,
                            lambda *_: None, connections=KeptConnections(reactor))
    verifier.startService()
    try:
        up = await read_mirror(service.client(), mirror.id)
        assert up is not None
        await verifier._verify_all(up, [PATH, PATH])  # the turn ends at the 429
        assert len(site.seen) == 1
        clock.advance(29)
        await verifier._verify_all(up, [PATH])  # Retry-After: 30 not over yet
        assert len(site.seen) == 1
        clock.advance(2)
        await verifier._verify_all(up, [PATH])
        assert len(site.seen) == 2
    finally:
        verifier.stopService()
