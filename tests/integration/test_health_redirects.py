# mypy: disable-error-code="untyped-decorator,import-untyped"
"""Where a health check follows a redirect: real HTTP(S) servers on 127.0.0.x, real Redis.

Same host and ``http`` → ``https`` are followed; another host only when
``AllowRedirectHosts`` names it; never to a non-public address unless the mirror is on one.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor, ssl
from twisted.internet.interfaces import IAddress, IListeningPort
from twisted.internet.task import Clock
from twisted.web.iweb import IAgent
from twisted.web.server import Site

from mirrorbits.config import Config
from mirrorbits.health import HealthChecker
from mirrorbits.health.probe import make_agent
from mirrorbits.health.redirects import AddressGuard, AddressRule
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import captured_log
from tests.integration.test_health import (
    PATH,
    MirrorSite,
    add_mirror,
    checker_for,
    clock,
    first_round,
    ports,
    serve,
    state,
)
from tests.integration.tls_support import tls_pair

pytestmark = pytest.mark.integration

__all__ = ["clock", "ports"]  # fixtures

ENCODED = "/pool/main/tool%202.4.1_amd64.deb"
assert PATH.replace(" ", "%20") == ENCODED


@pytest_twisted.ensureDeferred
async def test_another_host_is_followed_only_when_allowed(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    final = MirrorSite()
    target = serve(ports, final, "127.0.0.31") + "/pub/file.deb"
    refused = await add_mirror(store, redis_db, "refused",
                               serve(ports, MirrorSite(302, location=target), "127.0.0.30"))
    with captured_log("mirrorbits.health") as lines:
        checker = checker_for(service, store, clock)
        await first_round(checker)
        checker.stopService()
    assert final.seen == []
    assert state(redis_db, refused.id)["httpDownReason"] == "Unauthorized redirect"
    problem = "redirect to another host (127.0.0.31) refused: not in AllowRedirectHosts"
    assert [line for line in lines if "refused" in line.lower()] == [
        f"{'refused':<11} HTTP  Error: {problem} (0ms)"]  # one line: the URLs are debug

    for allowed in (("127.0.0.31",), ("*",)):
        redis_db.hdel(f"MIRROR_{refused.id}", "httpUp")
        checker = checker_for(service, store, clock, Config(allow_redirect_hosts=allowed))
        await first_round(checker)
        checker.stopService()
        assert state(redis_db, refused.id)["httpUp"] == "1"
    assert [s[:2] for s in final.seen] == [("HEAD", "/pub/file.deb")] * 2


@pytest_twisted.ensureDeferred
async def test_same_host_and_an_upgrade_to_https_are_followed_a_downgrade_is_not(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    host = "127.0.0.32"
    server, ca = tls_pair(host)

    def serve_tls(site: MirrorSite) -> str:
        port = cast(Any, reactor).listenSSL(0, Site(site), server.options(), interface=host)
        ports.append(port)
        return f"https://{host}:{port.getHost().port}"

    secure, plain = MirrorSite(), MirrorSite()
    secure_base, plain_base = serve_tls(secure), serve(ports, plain, host)
    upgrading = await add_mirror(store, redis_db, "upgrading", serve(
        ports, MirrorSite(301, location=secure_base + "/secure" + ENCODED), host))
    other_port = await add_mirror(store, redis_db, "other port", serve(
        ports, MirrorSite(302, location=plain_base + "/plain" + ENCODED), host))
    downgrading = await add_mirror(store, redis_db, "downgrading", serve_tls(
        MirrorSite(302, location=plain_base + "/down" + ENCODED)))

    def agents(admit: AddressRule) -> IAgent:
        return make_agent(reactor, admit, ssl.trustRootFromCertificates([ca]))

    checker = HealthChecker(Config, service.client, store, clock, agent_factory=agents,
                            timeout=5.0)
    with captured_log("mirrorbits.health") as lines:
        await first_round(checker)
    checker.stopService()
    assert state(redis_db, upgrading.id)["httpUp"] == "1"
    assert state(redis_db, other_port.id)["httpUp"] == "1"
    assert [s[:2] for s in secure.seen] == [("HEAD", "/secure" + ENCODED)]
    assert [s[:2] for s in plain.seen] == [("HEAD", "/plain" + ENCODED)]
    assert state(redis_db, downgrading.id)["httpsDownReason"] == "Unauthorized redirect"
    assert f"{'downgrading':<15} HTTPS Error: redirect from HTTPS to HTTP refused (0ms)" in lines


@pytest_twisted.ensureDeferred
async def test_a_public_mirror_cannot_send_a_check_to_a_loopback_address(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis, clock: Clock,
    ports: list[IListeningPort],
) -> None:
    """The mirror is made to look public (its first connection is recorded as such): the
    redirect's connection to 127.0.0.34, a host ``AllowRedirectHosts`` allows, is made and
    refused before the request is sent. A mirror that is on loopback may redirect there."""
    inside = MirrorSite()
    target = serve(ports, inside, "127.0.0.34") + "/inside"
    mirror = await add_mirror(store, redis_db, "public", serve(
        ports, MirrorSite(302, location=target), "127.0.0.33"))
    config = Config(allow_redirect_hosts=("*",))

    def looking_public(admit: AddressRule) -> IAgent:
        guard = getattr(admit, "__self__", None)
        if isinstance(guard, AddressGuard) and admit == guard.first:
            def public(peer: IAddress) -> None:
                guard.mirror_kind = "public"
            return make_agent(reactor, public)
        return make_agent(reactor, admit)

    checker = HealthChecker(lambda: config, service.client, store, clock,
                            agent_factory=looking_public, timeout=5.0)
    with captured_log("mirrorbits.health") as lines:
        await first_round(checker)
    checker.stopService()
    assert inside.seen == []
    assert state(redis_db, mirror.id)["httpDownReason"] == "Unauthorized redirect"
    problem = "redirect to a loopback address (127.0.0.34) refused: the mirror is not on one"
    assert f"{'public':<10} HTTP  Error: {problem} (0ms)" in lines

    checker = checker_for(service, store, clock, config)  # the real rule: it is on loopback
    await first_round(checker)
    checker.stopService()
    assert state(redis_db, mirror.id)["httpUp"] == "1"
    assert [s[:2] for s in inside.seen] == [("HEAD", "/inside")]
