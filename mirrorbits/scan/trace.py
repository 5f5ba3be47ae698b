"""The trace file of a mirror (spec §6.6): when its content was last updated.

Differences from the reference, on purpose: only a ``200`` answer is parsed (spec §20 item
20); an error page is logged as a fetch failure instead of being read as a timestamp.
Redirects are followed only where a health check's would be (:mod:`mirrorbits.health.redirects`;
the reference follows any). The answer is capped at :data:`MAX_ANSWER` bytes (a trace file
is one line): a larger one is abandoned as it arrives and logged as a fetch failure, so a
hostile mirror cannot make the process hold more than that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import treq
from twisted.internet.defer import Deferred
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent

from mirrorbits import version_string
from mirrorbits.health.probe import follow
from mirrorbits.health.redirects import AddressRule
from mirrorbits.httppool import QuietConnectionPool, describe_error
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store.client import RedisClient
from mirrorbits.store.scans import record_trace
from mirrorbits.urls import encode_url

__all__ = ["CONNECT_TIMEOUT", "DEADLINE", "MAX_ANSWER", "fetch_trace", "parse_trace",
           "trace_url"]

log = Logger(namespace="mirrorbits.scan.trace")

CONNECT_TIMEOUT: Final = 20.0
DEADLINE: Final = 40.0
#: Bytes of a trace answer (status line, headers and body) read at most.
MAX_ANSWER: Final = 128 * 1024


def trace_url(mirror: Mirror, location: str) -> str:
    """``<base>/<location>`` joined with one ``/``; a scheme-less base gets one from httpsUp.

    Both are written by the operator: percent-encoded as a base URL (:func:`encode_url`).
    """
    base = mirror.http_url
    if "://" not in base:
        base = ("https://" if mirror.https_up else "http://") + base
    return encode_url(base.rstrip("/") + "/" + location.lstrip("/"))


def parse_trace(body: bytes) -> int:
    """The first whitespace-separated word as base-10 Unix seconds (``ValueError`` else)."""
    words = body.split()
    word = words[0].decode("utf-8", "replace") if words else ""
    value: int | None = None
    if word.isascii() and word.lstrip("+-").isdigit():
        try:
            value = int(word, 10)
        except ValueError:
            value = None
    if value is None or not -(2**63) <= value < 2**63:
        raise ValueError(f'"{word}" is not a valid timestamp')
    return value


async def _get(reactor: IConnectingReactor, url: str, name: str,
               other_hosts: Sequence[str]) -> tuple[int, bytes]:
    def agents(admit: AddressRule) -> IAgent:
        pool = QuietConnectionPool(reactor, MAX_ANSWER, admit)
        return Agent(reactor, connectTimeout=CONNECT_TIMEOUT, pool=pool)

    headers = Headers({b"User-Agent": [f"Mirrorbits/{version_string()} TRACE".encode()]})
    response = await follow(agents, b"GET", url, headers, True, name, other_hosts)
    if response.code != 200:
        await treq.collect(response, lambda data: None)
        return response.code, b""
    chunks: list[bytes] = []  # at most MAX_ANSWER bytes: the pool aborts past it
    await treq.collect(response, chunks.append)
    return 200, b"".join(chunks)


async def fetch_trace(
    reactor: IConnectingReactor, client: RedisClient, mirror: Mirror, location: str, *,
    log_parse: bool = True, other_hosts: Sequence[str] = (),
) -> int | None:
    """Fetch the trace file, store ``lastModTime`` and publish; the timestamp or None.

    Redirects are followed as a health check's are (``other_hosts``: ``AllowRedirectHosts``).
    Every failure is logged, never raised. The whole exchange is bounded by :data:`DEADLINE`.
    """
    url = trace_url(mirror, location)
    fetching: Deferred[tuple[int, bytes]] = Deferred.fromCoroutine(
        _get(reactor, url, mirror.name, other_hosts))
    fetching.addTimeout(DEADLINE, reactor)
    try:
        code, body = await fetching
    except Exception as err:
        log.warn("[{name}] fetching trace file failed: {error}", name=mirror.name,
                 error=describe_error(err))
        return None
    if code != 200:
        log.warn("[{name}] fetching trace file failed: HTTP status {code}", name=mirror.name,
                 code=code)
        return None
    try:
        stamp = parse_trace(body)
    except ValueError as err:
        if log_parse:
            log.warn("[{name}] parsing trace file failed: {error}", name=mirror.name, error=err)
        return None
    await record_trace(client, mirror.id, stamp)
    return stamp
