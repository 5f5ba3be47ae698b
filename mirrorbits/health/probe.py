"""One check of a file on a mirror: a ``HEAD`` request, following (or refusing) redirects,
with an overall timeout; a ranged ``GET`` instead when the mirror refuses ``HEAD``
(:mod:`mirrorbits.health.refusals`).

Which redirects are followed: :mod:`mirrorbits.health.redirects`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import cast
from urllib.parse import urljoin

from attrs import evolve
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from mirrorbits import version_string
from mirrorbits.health.outcome import ProbeResult
from mirrorbits.health.redirects import AddressGuard, AddressRule, redirect_problem
from mirrorbits.health.refusals import (
    DEFERRING,
    HEAD_REFUSED,
    HeadRefusals,
    content_range_total,
    retry_after_seconds,
)
from mirrorbits.httppool import (
    AddressRefused,
    AnswerTooLarge,
    QuietConnectionPool,
    caused_by,
    describe_error,
)
from mirrorbits.logs import Logger
from mirrorbits.reactors import IConnectingReactor

CONNECT_TIMEOUT = 20.0
CHECK_TIMEOUT = 40.0
MAX_REDIRECTS = 10
#: Bytes of an answer to a check read at most: a HEAD answer is its status line and
#: headers, no body is read (nothing of it is kept).
MAX_ANSWER = 64 * 1024
#: Bytes of the body of a ranged ``GET`` read at most (a mirror ignoring ``Range`` sends the
#: whole file: the connection is closed past them).
MAX_RANGED_BODY = 1024
RANGE = b"bytes=0-0"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

#: Builds the agent of one request; its connections must obey the address rule.
AgentFactory = Callable[[AddressRule], IAgent]

log = Logger()


def user_agent() -> bytes:
    return f"Mirrorbits/{version_string()} PING CHECK".encode()


def make_agent(reactor: IConnectingReactor, admit: AddressRule | None = None,
               trust_root: IOpenSSLTrustRoot | None = None) -> IAgent:
    """An agent that closes every connection (``Connection: close``) and verifies TLS.

    ``admit`` is the address rule of its connections; ``trust_root`` replaces the system's
    CA certificates (tests use their own CA).
    """
    pool = QuietConnectionPool(reactor, MAX_ANSWER, admit)
    policy = BrowserLikePolicyForHTTPS(trust_root) if trust_root else BrowserLikePolicyForHTTPS()
    return Agent(reactor, contextFactory=policy, connectTimeout=CONNECT_TIMEOUT, pool=pool)


class RedirectRefused(Exception):
    """The mirror redirected while redirects are disallowed for it, or to a place the
    redirect policy refuses (the text says which)."""


async def head(agents: AgentFactory, url: str, allow_redirects: bool, name: str,
               other_hosts: Sequence[str] = (), ranged: bool = False) -> IResponse:
    """``HEAD url`` (``ranged``: ``GET`` its first byte); redirects are followed (at most 10,
    where the policy allows) or refused."""
    headers = Headers({b"User-Agent": [user_agent()]})
    if ranged:
        headers.setRawHeaders(b"Range", [RANGE])
    response = await follow(agents, b"GET" if ranged else b"HEAD", url, headers,
                            allow_redirects, name, other_hosts)
    response.deliverBody(_FirstBytes() if ranged else _Discard())
    return response


async def follow(agents: AgentFactory, method: bytes, url: str, headers: Headers,
                 allow_redirects: bool, name: str, other_hosts: Sequence[str]) -> IResponse:
    """``method url``, following the redirects the policy allows (the bodies of the redirect
    answers are dropped); the final answer's body is the caller's to read."""
    current = _ascii_url(url)
    guard = AddressGuard()
    for hop in range(MAX_REDIRECTS + 1):
        agent = agents(guard.first if hop == 0 else guard.redirected)
        try:
            response: IResponse = await agent.request(method, current.encode("ascii"), headers)
        except AddressRefused as err:
            # The check's own line says the problem (once while it lasts); this one, the URLs.
            log.debug("Refused redirection for {name}: {target}: {problem}", name=name,
                     target=current, problem=err)
            raise RedirectRefused(str(err)) from None
        location = response.headers.getRawHeaders(b"location")
        if response.code not in REDIRECT_CODES or not location:
            return response
        response.deliverBody(_Discard())
        target = urljoin(current, location[0].decode("latin-1"))
        if not allow_redirects:
            log.warn("Unauthorized redirection for {name}: {source} => {target}",
                     name=name, source=current, target=target)
            raise RedirectRefused("redirect not allowed")
        problem = redirect_problem(current, target, url, other_hosts)
        if problem is not None:
            log.debug("Refused redirection for {name}: {source} => {target}: {problem}",
                     name=name, source=current, target=target, problem=problem)
            raise RedirectRefused(problem)
        if hop == MAX_REDIRECTS:
            break
        current = _ascii_url(target)
    raise OSError(f"stopped after {MAX_REDIRECTS} redirects")


async def probe(agents: AgentFactory, reactor: IReactorTime, url: str, allow_redirects: bool,
                name: str, timeout: float = CHECK_TIMEOUT,
                other_hosts: Sequence[str] = (), refusals: HeadRefusals | None = None,
                key: Hashable = None) -> ProbeResult:
    """Check ``url``: ``HEAD``, or a ranged ``GET`` when it answers :data:`HEAD_REFUSED` or
    ``refusals`` remembers that mirror (``key``) refusing it; never raises except on
    cancellation. ``timeout`` bounds the whole check."""
    start = reactor.seconds()
    ranged = refusals is not None and refusals.skip_head(key, start)
    result = await _ask(agents, reactor, url, allow_redirects, name, timeout, other_hosts,
                        ranged, start)
    if ranged or result.status is None:
        return result
    if result.status not in HEAD_REFUSED:
        if refusals is not None:
            refusals.accepted(key)
        return result
    left = timeout - (reactor.seconds() - start)
    got = await _ask(agents, reactor, url, allow_redirects, name, left, other_hosts, True, start)
    if (got.status is not None and got.status not in HEAD_REFUSED and refusals is not None
            and refusals.refused(key, reactor.seconds())):
        log.info("{name}: HEAD answered {status}, a ranged GET {got}: checked with GET "
                 "(Range: bytes=0-0) from now on", name=name, status=result.status,
                 got=got.status)
    return evolve(got, head_refused=result.status)


async def _ask(agents: AgentFactory, reactor: IReactorTime, url: str, allow_redirects: bool,
               name: str, timeout: float, other_hosts: Sequence[str], ranged: bool,
               start: float) -> ProbeResult:
    """One request of :func:`probe` (``elapsed_ms`` counts from ``start``)."""
    request = Deferred.fromCoroutine(head(agents, url, allow_redirects, name, other_hosts,
                                          ranged))
    request.addTimeout(max(timeout, 0.0), reactor)
    cancelled = False

    def cancel(_: Deferred[IResponse]) -> None:
        nonlocal cancelled
        cancelled = True
        request.cancel()

    # Cancelling the check (service stopping) must not read as "Unreachable": the agent
    # reports an aborted request with its own exceptions, so remember who cancelled.
    outer: Deferred[IResponse] = Deferred(cancel)
    request.chainDeferred(outer)
    try:
        response = await outer
    except RedirectRefused as err:
        return ProbeResult(error=str(err), redirect_refused=True, elapsed_ms=_ms(reactor, start))
    except Exception as err:  # any transport failure means "unreachable"
        if cancelled:
            raise CancelledError() from err
        return ProbeResult(error=describe_error(err), too_large=caused_by(err, AnswerTooLarge),
                           elapsed_ms=_ms(reactor, start))
    if response.code == 206:
        length = content_range_total(_header(response, b"content-range"))
    else:
        length = _header(response, b"content-length")
    retry = (retry_after_seconds(_header(response, b"retry-after"), reactor.seconds())
             if response.code in DEFERRING else None)
    return ProbeResult(status=response.code, content_length=length, retry_after=retry,
                       last_modified=_header(response, b"last-modified"),
                       elapsed_ms=_ms(reactor, start))


def _header(response: IResponse, name: bytes) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None


def _ms(reactor: IReactorTime, start: float) -> int:
    return int((reactor.seconds() - start) * 1000)


def _ascii_url(url: str) -> str:
    """A redirect target made ASCII (non-ASCII characters percent-encoded)."""
    return "".join(c if ord(c) < 128 else "".join(f"%{b:02X}" for b in c.encode()) for c in url)


class _Discard(Protocol):
    """A body protocol that drops whatever arrives (HEAD responses have no body)."""


class _FirstBytes(Protocol):
    """The body of a ranged ``GET``: dropped, and the connection closed past
    :data:`MAX_RANGED_BODY` bytes (a mirror ignoring ``Range`` sends the whole file)."""

    def __init__(self) -> None:
        self._received = 0

    def dataReceived(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > MAX_RANGED_BODY and self.transport is not None:
            cast(IPushProducer, self.transport).stopProducing()
            self.transport = None
