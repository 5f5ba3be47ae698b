# mypy: disable-error-code="untyped-decorator,import-untyped"
"""Health checks against real HTTP servers on loopback and a real redis-server.

Scheduling runs on a ``Clock`` (so rechecks are explicit), HTTP on the real reactor; the
timeout and stop tests run everything on the real reactor.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any, cast

import attrs
import pytest
import pytest_twisted
import redis
from attrs import define, field
from twisted.internet import reactor, ssl
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mirrorbits import version_string
from mirrorbits.config import Config
from mirrorbits.health import HealthChecker
from mirrorbits.health.liveness import REASON as LIVENESS_REASON
from mirrorbits.health.probe import make_agent
from mirrorbits.helddown import HeldDown
from mirrorbits.model import REDIRECTS_ALLOWED, REDIRECTS_DISALLOWED, GeoRecord, Mirror
from mirrorbits.store import events, keys
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import captured_log, eventually, within
from tests.integration.tls_support import tls_pair
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

NOW = 1795571680.0
PATH = "/pool/main/tool 2.4.1_amd64.deb"  # a space: must be sent percent-encoded
SIZE = 48213


@define
class MirrorSite(Resource):
    """A mirror's HTTP server: answers ``status`` (and a redirect target) and logs requests."""

    status: int = 200
    location: str = ""
    body_size: int = SIZE
    seen: list[tuple[str, str, str, list[str]]] = field(factory=list)
    isLeaf = True

    def __attrs_post_init__(self) -> None:
        Resource.__init__(self)

    def render(self, request: Request) -> bytes:
        headers = request.requestHeaders
        self.seen.append((request.method.decode(), request.uri.decode(),
                          (headers.getRawHeaders(b"user-agent") or [b""])[0].decode(),
                          [v.decode() for v in headers.getRawHeaders(b"connection") or []]))
        request.setResponseCode(self.status)
        if self.location:
            request.setHeader(b"location", self.location.encode())
        return b"x" * self.body_size if self.status == 200 else b""


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(NOW)
    return clock


@pytest.fixture
def ports() -> Iterator[list[IListeningPort]]:
    opened: list[IListeningPort] = []
    yield opened
    for port in opened:
        port.stopListening()


def serve(ports: list[IListeningPort], site: MirrorSite, host: str) -> str:
    """Serve ``site`` on ``host`` (a 127.0.0.x address); its base URL."""
    return listen(ports, Site(site), host)


def listen(ports: list[IListeningPort], factory: Any, host: str) -> str:
    """Listen with ``factory`` on ``host``; the ``http://host:port`` URL."""
    port = reactor.listenTCP(0, factory, interface=host)
    ports.append(port)
    return f"http://{host}:{cast(Any, port.getHost()).port}"


async def add_mirror(store: MirrorStore, db: redis.Redis, name: str, url: str,
                     allow_redirects: int = 0, path: str = PATH) -> Mirror:
    """An enabled mirror that held ``path`` at its last scan, ``path`` existing locally."""
    mirror = await store.add_mirror(Mirror(name=name, http_url=url,
                                           allow_redirects=allow_redirects))
    await store.set_enabled(mirror.id, True)
    db.hset(keys.file(path), mapping={"size": str(SIZE)})
    db.sadd(keys.handled_files(mirror.id), path)
    return mirror


def checker_for(service: RedisService, store: MirrorStore, clock: Any,
                config: Config | None = None, timeout: float = 5.0) -> HealthChecker:
    return HealthChecker(lambda: config or Config(), service.client, store, clock,
                         agent_factory=lambda admit: make_agent(reactor, admit),
                         timeout=timeout)


def state(db: redis.Redis, mirror_id: int) -> dict[str, str]:
    fields = ("httpUp", "httpDownReason", "httpsUp", "httpsDownReason", "stateSince", "enabled")
    values = db.hmget(keys.mirror(mirror_id), list(fields))
    return {k: str(v) for k, v in zip(fields, values, strict=True) if v is not None}


def state_changes(db: redis.Redis, mirror_id: int) -> list[dict[str, Any]]:
    entries = [json.loads(e) for e in db.lrange(keys.mirror_logs(mirror_id), 0, -1)]
    return [{k: e[k] for k in ("Proto", "Up", "Reason")}
            for e in entries if e["Type"] == events.TYPE_STATE_CHANGED]


async def first_round(checker: HealthChecker) -> None:
    checker.startService()
    await within(checker.when_idle())


@pytest_twisted.ensureDeferred
async def test_outcomes_are_recorded_exactly(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    up_site, missing_site, limited_site = MirrorSite(), MirrorSite(404), MirrorSite(429)
    target = serve(ports, MirrorSite(), "127.0.0.6")
    moved_site = MirrorSite(302, location=target + "/elsewhere")
    up = await add_mirror(store, redis_db, "up", serve(ports, up_site, "127.0.0.2") + "/")
    missing = await add_mirror(store, redis_db, "missing", serve(ports, missing_site, "127.0.0.3"))
    limited = await add_mirror(store, redis_db, "limited", serve(ports, limited_site, "127.0.0.4"))
    moved = await add_mirror(store, redis_db, "moved", serve(ports, moved_site, "127.0.0.5"),
                             allow_redirects=REDIRECTS_DISALLOWED)
    checker = checker_for(service, store, clock)
    with captured_log("mirrorbits.health") as lines:
        await first_round(checker)
    checker.stopService()

    width = len("missing") + 4  # the longest name + 4, then the protocol in 5 columns
    assert f"{'up':<{width}} HTTP  Up! (0ms)" in lines
    assert (f"{'limited':<{width}} HTTP  Rate limited! Status: 429 (state kept: down at 3 in "
            "a row or after 10 min)") in lines  # a mirror never checked: still down
    assert f"{'moved':<{width}} HTTP  Error: redirect not allowed (0ms)" in lines
    assert any(line.startswith("Unauthorized redirection for moved: http://127.0.0.5:")
               for line in lines)
    assert state(redis_db, up.id) == {"httpUp": "1", "httpDownReason": "", "httpsUp": "0",
                                      "stateSince": str(int(NOW)), "enabled": "1"}
    assert state_changes(redis_db, up.id) == [{"Proto": 1, "Up": True, "Reason": ""}]
    # Missing up-field counts as down: a first failed check is no transition (no stateSince).
    assert state(redis_db, missing.id) == {
        "httpUp": "0", "httpDownReason": f"File not found {PATH} (error 404)", "httpsUp": "0",
        "enabled": "1"}
    assert state(redis_db, limited.id)["httpDownReason"] == "Rate limited (error 429)"
    assert state(redis_db, moved.id)["httpDownReason"] == "Unauthorized redirect"
    for mirror in (missing, limited, moved):
        assert state(redis_db, mirror.id)["httpUp"] == "0"
        assert state_changes(redis_db, mirror.id) == []
    ua = f"Mirrorbits/{version_string()} PING CHECK"
    sent = ("HEAD", "/pool/main/tool%202.4.1_amd64.deb", ua, ["close"])
    assert up_site.seen == [sent]
    assert missing_site.seen == limited_site.seen == moved_site.seen == [sent]


@pytest_twisted.ensureDeferred
async def test_allowed_redirects_are_followed(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    final = MirrorSite()
    base = serve(ports, final, "127.0.0.8")
    moved = MirrorSite(301, location=base + "/pub/file.deb")
    mirror = await add_mirror(store, redis_db, "moved", serve(ports, moved, "127.0.0.7"),
                              allow_redirects=REDIRECTS_ALLOWED)
    config = Config(disallow_redirects=True, allow_redirect_hosts=("127.0.0.8",))
    checker = checker_for(service, store, clock, config)
    await first_round(checker)
    checker.stopService()
    assert state(redis_db, mirror.id)["httpUp"] == "1"
    assert [s[:2] for s in final.seen] == [("HEAD", "/pub/file.deb")]


@pytest_twisted.ensureDeferred
async def test_a_mirror_going_down_and_up_again(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = MirrorSite()
    mirror = await add_mirror(store, redis_db, "flaky", serve(ports, site, "127.0.0.9"))
    checker = checker_for(service, store, clock)
    await first_round(checker)
    assert state(redis_db, mirror.id)["stateSince"] == str(int(NOW))

    site.status = 503
    clock.advance(30)
    await within(checker.when_idle())
    assert len(site.seen) == 1  # not due before CheckInterval (1 minute)
    clock.advance(31)
    await within(checker.when_idle())
    assert state(redis_db, mirror.id) == {
        "httpUp": "0", "httpDownReason": "Got status code 503", "httpsUp": "0",
        "stateSince": str(int(NOW) + 61), "enabled": "1"}

    site.status = 200
    clock.advance(61)
    await within(checker.when_idle())
    checker.stopService()
    assert state(redis_db, mirror.id)["stateSince"] == str(int(NOW) + 122)
    assert state(redis_db, mirror.id)["httpUp"] == "1"
    assert state_changes(redis_db, mirror.id) == [
        {"Proto": 1, "Up": True, "Reason": ""},
        {"Proto": 1, "Up": False, "Reason": "Got status code 503"},
        {"Proto": 1, "Up": True, "Reason": ""},
    ]


@pytest_twisted.ensureDeferred
async def test_a_mirror_the_liveness_check_found_down_is_not_said_down_again(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = MirrorSite()
    mirror = await add_mirror(store, redis_db, "gone", serve(ports, site, "127.0.0.9"))
    checker = checker_for(service, store, clock)
    with captured_log("mirrorbits.health") as lines:
        await first_round(checker)
        site.status = 503
        # the liveness check lost it and said so ("gone HTTP: down, Unreachable (liveness)")
        await store.set_state(mirror.id, events.PROTO_HTTP, False, LIVENESS_REASON)
        clock.advance(61)
        await within(checker.when_idle())
        site.status = 200
        clock.advance(61)
        await within(checker.when_idle())
        site.status = 503  # down again, found by a check this time: said
        clock.advance(61)
        await within(checker.when_idle())
    checker.stopService()
    said = [line.split("HTTP  ")[1].split(" (")[0] for line in lines]
    assert said == ["Up!", "Up!", "Down! Status: 503"], lines


@pytest_twisted.ensureDeferred
async def test_404_disables_the_mirror_when_configured(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    mirror = await add_mirror(store, redis_db, "gone", serve(ports, MirrorSite(404), "127.0.0.10"))
    checker = checker_for(service, store, clock, Config(disable_on_missing_file=True))
    await first_round(checker)
    checker.stopService()
    assert state(redis_db, mirror.id)["enabled"] == "0"
    assert state(redis_db, mirror.id)["httpDownReason"] == f"File not found {PATH} (error 404)"


@pytest_twisted.ensureDeferred
async def test_a_mirror_missing_every_file_asked_says_what_to_look_at(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    """Three files missing in a row is most often an HTTP URL on another tree than the one
    the scans list (a first setup's usual slip): the log line says where to look."""
    url = serve(ports, MirrorSite(404), "127.0.0.10") + "/wrong/"
    mirror = await add_mirror(store, redis_db, "wrong", url)
    for path in ("/a.bin", "/b.bin"):
        redis_db.hset(keys.file(path), mapping={"size": str(SIZE)})
        redis_db.sadd(keys.handled_files(mirror.id), path)
    checker = checker_for(service, store, clock)
    with captured_log("mirrorbits.health") as lines:
        await first_round(checker)
    checker.stopService()
    down = [line for line in lines if "Down! Status: 404" in line]
    assert down == [f"wrong     HTTP  Down! Status: 404 (3 files missing in a row: is {url} the "
                    "top of the tree its scans list?)"], lines
    assert state(redis_db, mirror.id)["httpUp"] == "0"


@pytest_twisted.ensureDeferred
async def test_a_file_deleted_locally_since_the_scan_does_not_mark_the_mirror_down(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = MirrorSite(404)
    mirror = await add_mirror(store, redis_db, "stale", serve(ports, site, "127.0.0.11"))
    # The file is gone locally between the choice of the target and the answer.
    original_render = site.render

    def delete_then_render(request: Request) -> bytes:
        redis_db.delete(keys.file(PATH))
        return original_render(request)

    site.render = delete_then_render  # type: ignore[method-assign]
    checker = checker_for(service, store, clock)
    await first_round(checker)
    checker.stopService()
    assert len(site.seen) == 1
    assert state(redis_db, mirror.id) == {"httpsUp": "0", "enabled": "1"}
    assert state_changes(redis_db, mirror.id) == []


@pytest_twisted.ensureDeferred
async def test_an_unscanned_mirror_is_checked_again_next_interval(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = MirrorSite()
    mirror = await add_mirror(store, redis_db, "new", serve(ports, site, "127.0.0.12"))
    redis_db.delete(keys.handled_files(mirror.id))
    checker = checker_for(service, store, clock)
    await first_round(checker)
    assert site.seen == []
    assert "httpUp" not in state(redis_db, mirror.id)

    redis_db.sadd(keys.handled_files(mirror.id), PATH)  # its first scan completed
    clock.advance(61)
    await within(checker.when_idle())
    checker.stopService()
    assert len(site.seen) == 1
    assert state(redis_db, mirror.id)["httpUp"] == "1"


@pytest_twisted.ensureDeferred
async def test_scheme_less_mirrors_are_checked_on_both_protocols(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = MirrorSite()
    url = serve(ports, site, "127.0.0.13").removeprefix("http://")
    mirror = await add_mirror(store, redis_db, "both", url)
    # The plain-HTTP server never completes the TLS handshake: a real 1 s timeout ends it.
    checker = checker_for(service, MirrorStore(service, reactor), reactor, timeout=1.0)
    await first_round(checker)
    checker.stopService()
    found = state(redis_db, mirror.id)
    assert found["httpUp"] == "1"
    assert found["httpsUp"] == "0"
    assert found["httpsDownReason"] == "Unreachable"
    assert [c["Proto"] for c in state_changes(redis_db, mirror.id)] == [1]


class Silent(Protocol):
    """Accepts a connection and never answers."""


@pytest_twisted.ensureDeferred
async def test_a_mirror_that_never_answers_times_out_as_unreachable(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, ports: list[IListeningPort],
) -> None:
    url = listen(ports, Factory.forProtocol(Silent), "127.0.0.14")
    mirror = await add_mirror(store, redis_db, "silent", url + "/")
    real_store = MirrorStore(service, reactor)
    checker = checker_for(service, real_store, reactor, timeout=1.0)
    start = reactor.seconds()
    await first_round(checker)
    checker.stopService()
    assert 0.9 < reactor.seconds() - start < 5
    assert state(redis_db, mirror.id)["httpDownReason"] == "Unreachable"


@pytest_twisted.ensureDeferred
async def test_stopping_cancels_a_check_in_flight(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    url = listen(ports, Factory.forProtocol(Silent), "127.0.0.15")
    mirror = await add_mirror(store, redis_db, "silent", url + "/")
    checker = checker_for(service, store, clock, timeout=30.0)
    checker.startService()
    for _ in range(500):  # wait (bounded) until the check is running
        if mirror.id in checker.in_flight:
            break
        await within(_later(0.01))
    assert checker.in_flight == frozenset({mirror.id})
    await within(checker.stopService())
    await within(checker.when_idle())
    assert checker.in_flight == frozenset()
    assert "httpUp" not in state(redis_db, mirror.id)


def _later(seconds: float) -> Any:
    return deferLater(reactor, seconds, lambda: None)


@pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")  # Twisted's own calls
@pytest_twisted.ensureDeferred
async def test_https_is_verified_against_the_trust_roots(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    host = "127.0.0.16"
    server, ca = tls_pair(host)
    site = MirrorSite()
    port = cast(Any, reactor).listenSSL(0, Site(site), server.options(), interface=host)
    ports.append(port)
    url = f"https://{host}:{cast(Any, port.getHost()).port}/"
    trusted = await add_mirror(store, redis_db, "trusted", url)
    checker = HealthChecker(Config, service.client, store, clock, timeout=5.0,
                            agent_factory=lambda admit: make_agent(
                                reactor, admit, ssl.trustRootFromCertificates([ca])))
    await first_round(checker)
    checker.stopService()
    assert state(redis_db, trusted.id)["httpsUp"] == "1"
    assert len(site.seen) == 1

    # The same server with the system's CAs: the certificate is refused.
    redis_db.delete(keys.mirror_logs(trusted.id))
    untrusting = checker_for(service, store, clock)
    await first_round(untrusting)
    untrusting.stopService()
    assert state(redis_db, trusted.id)["httpsUp"] == "0"
    assert state(redis_db, trusted.id)["httpsDownReason"] == "Unreachable"
    assert len(site.seen) == 1


@pytest_twisted.ensureDeferred
async def test_a_recovering_mirror_is_rescanned_before_it_is_trusted(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = MirrorSite()
    mirror = await add_mirror(store, redis_db, "recovering", serve(ports, site, "127.0.0.17"))
    redis_db.hset(keys.mirror(mirror.id), "lastSuccessfulSync", str(int(NOW) - 3600))
    rescans: list[int] = []
    outcomes: list[Exception | None] = [RuntimeError("rsync: Timeout"), None]

    async def rescan(mirror_id: int) -> None:
        rescans.append(mirror_id)
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure

    checker = HealthChecker(Config, service.client, store, clock, timeout=5.0,
                            agent_factory=lambda admit: make_agent(reactor, admit),
                            rescan=rescan)
    site.status = 503
    await first_round(checker)
    assert state(redis_db, mirror.id)["httpUp"] == "0"
    redis_db.hset(keys.mirror(mirror.id), "stateSince", str(int(NOW)))  # went down after the scan

    site.status = 200
    clock.advance(61)
    await within(checker.when_idle())
    assert rescans == [mirror.id]
    assert state(redis_db, mirror.id)["httpUp"] == "0"  # the rescan failed: still not trusted

    clock.advance(61)
    await within(checker.when_idle())
    checker.stopService()
    assert rescans == [mirror.id, mirror.id]
    assert state(redis_db, mirror.id)["httpUp"] == "1"


def test_only_mirrors_down_since_their_last_scan_need_a_rescan() -> None:
    from mirrorbits.health.checker import needs_rescan

    down = Mirror(http_url="http://m/", state_since=1000, last_successful_sync=900)
    assert needs_rescan(down, 1)
    assert not needs_rescan(attrs.evolve(down, last_successful_sync=1100), 1)
    assert not needs_rescan(attrs.evolve(down, http_up=True), 1)
    assert not needs_rescan(attrs.evolve(down, state_since=None), 1)  # never changed: new mirror
    assert needs_rescan(attrs.evolve(down, last_successful_sync=None), 1)
    assert needs_rescan(attrs.evolve(down, http_url="m/", https_up=False), 2)


@pytest_twisted.ensureDeferred
async def test_redirects_stop_within_one_interval_and_resume_on_recovery(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort], redis_server: RedisServer,
) -> None:
    """Health check -> Redis -> pub/sub -> request cache -> selection, end to end."""
    from mirrorbits.cache import MISSING, MirrorCache
    from mirrorbits.model import FileInfo
    from mirrorbits.selection import Secure, SelectionOptions, select
    from mirrorbits.store.pubsub import PubSubService

    site = MirrorSite()
    mirror = await add_mirror(store, redis_db, "flaky", serve(ports, site, "127.0.0.18"))
    local = FileInfo(path=PATH, size=SIZE, mod_time_ns=int(NOW) * 10**9)
    redis_db.sadd(keys.file_mirrors(PATH), mirror.id)
    redis_db.hset(keys.file_info(mirror.id, PATH), mapping={"size": str(SIZE)})
    cache = MirrorCache(service.client, clock)
    pubsub = PubSubService(redis_server.address, "", reactor)
    pubsub.on_message(keys.CHANNEL_MIRROR_UPDATE, cache.on_mirror_update)
    pubsub.startService()
    await within(pubsub.whenReady())
    checker = checker_for(service, store, clock)

    async def chosen() -> list[str]:
        entries = await cache.candidates(PATH)
        picked = select(local, entries, GeoRecord(), Secure.UNDEFINED, SelectionOptions(),
                        random.Random(1))
        return [c.mirror.name for c in picked.mirrors]

    try:
        await first_round(checker)
        await eventually(lambda: cache.cached_candidates(PATH) is MISSING)
        assert await chosen() == ["flaky"]

        site.status = 503
        clock.advance(61)  # one CheckInterval
        await within(checker.when_idle())
        await eventually(lambda: cache.cached_candidates(PATH) is MISSING)
        assert await chosen() == []

        site.status = 200
        clock.advance(61)
        await within(checker.when_idle())
        await eventually(lambda: cache.cached_candidates(PATH) is MISSING)
        assert await chosen() == ["flaky"]
    finally:
        checker.stopService()
        await pubsub.stopService()


@pytest_twisted.ensureDeferred
async def test_a_wrong_content_length_is_reported_but_keeps_the_mirror_up(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    site = MirrorSite(body_size=SIZE - 13)
    mirror = await add_mirror(store, redis_db, "short", serve(ports, site, "127.0.0.19"))
    checker = checker_for(service, store, clock)
    with captured_log("mirrorbits.health") as lines:
        await first_round(checker)
    checker.stopService()
    assert any(line.endswith(f"File size mismatch! [{PATH}]") for line in lines), lines
    assert state(redis_db, mirror.id)["httpUp"] == "1"


@define
class Switch:
    """Stands for the RedisService: its client, or ``DatabaseNotReady`` once ``off``."""

    service: RedisService
    off: bool = False

    def client(self) -> Any:
        if self.off:
            raise DatabaseNotReady("database not ready")
        return self.service.client()


@pytest_twisted.ensureDeferred
async def test_a_mirror_found_down_while_redis_refuses_writes_is_held_down_and_checked_again(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    """``NOREPLICAS``: the verdict that would change Redis is held in memory and tried again
    at each round until Redis takes it; one Redis already holds waits for its interval."""
    flaky, steady = MirrorSite(), MirrorSite()
    mirror = await add_mirror(store, redis_db, "flaky", serve(ports, flaky, "127.0.0.9"))
    await add_mirror(store, redis_db, "steady", serve(ports, steady, "127.0.0.10"))
    held = HeldDown()
    checker = attrs.evolve(checker_for(service, store, clock), held_down=held)
    await first_round(checker)
    try:
        redis_db.config_set("min-replicas-to-write", 1)
        flaky.status = 503
        clock.advance(61)
        await within(checker.when_idle())
        assert (mirror.id, events.PROTO_HTTP) in held
        assert state(redis_db, mirror.id)["httpUp"] == "1"
        clock.advance(1)
        await within(checker.when_idle())
        assert (len(flaky.seen), len(steady.seen)) == (3, 2)  # flaky again, steady not
        redis_db.config_set("min-replicas-to-write", 0)
        clock.advance(1)
        await within(checker.when_idle())
    finally:
        redis_db.config_set("min-replicas-to-write", 0)
        checker.stopService()
    assert state(redis_db, mirror.id)["httpUp"] == "0"
    assert not held


@pytest_twisted.ensureDeferred
async def test_while_redis_cannot_be_read_the_checks_go_on_from_what_was_read(
    service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    """Redis a replica, or gone: the mirror list and the file last read are checked still
    (before, every round was skipped), and a mirror found down is held down."""
    switch = Switch(service)
    store = MirrorStore(cast(RedisService, switch), clock)
    site = MirrorSite()
    mirror = await add_mirror(store, redis_db, "flaky", serve(ports, site, "127.0.0.9"))
    held = HeldDown()
    checker = HealthChecker(lambda: Config(), switch.client, store, clock,
                            agent_factory=lambda admit: make_agent(reactor, admit),
                            timeout=5.0, held_down=held)
    await first_round(checker)
    switch.off = True
    site.status = 503
    clock.advance(61)
    await within(checker.when_idle())
    checker.stopService()
    assert len(site.seen) == 2
    assert held.snapshot()[0][:3] == [mirror.id, events.PROTO_HTTP, "Got status code 503"]
