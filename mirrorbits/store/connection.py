"""Connecting to the Redis master (§3.5): Sentinel discovery, AUTH, SELECT, role and version.

Every connection decodes replies as UTF-8 text and never converts numbers.
"""

from __future__ import annotations

import re
from typing import TypeVar, cast

import txredisapi
from attrs import evolve, frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.python.failure import Failure

from mirrorbits.addresses import AddressError, split_host_port
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store.client import RedisConnection, RedisPool
from mirrorbits.store.errors import StoreError
from mirrorbits.store.retrylog import quiet_pool_retries

MIN_REDIS_VERSION = "3.2.0"
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
CONNECT_TIMEOUT = 2.0  # seconds, per connection attempt (TCP + AUTH + SELECT)
COMMAND_TIMEOUT = 5.0  # seconds, for the health and discovery commands
REPLY_TIMEOUT = 300  # seconds, for commands sent through the pool

_T = TypeVar("_T")


def parse_version(version: str) -> tuple[int, int, int]:
    """``7.0.15`` → ``(7, 0, 15)``: three numeric parts, missing or non-numeric ones as 0."""
    parts = [int(m.group()) if (m := re.match(r"\d+", p)) else 0 for p in version.split(".")]
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def version_at_least(version: str, minimum: str) -> bool:
    """The reference's Redis version test (§3.5): pad to three parts, compare numerically."""
    return parse_version(version) >= parse_version(minimum)


def parse_address(address: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare host → ``(host, port)``; StoreError.

    :func:`mirrorbits.addresses.split_host_port` reads it; no port means ``default_port``
    and no host means 127.0.0.1.
    """
    text = address.strip()
    if not text:
        raise StoreError("empty Redis address")
    if ":" not in text or text.endswith("]"):
        text = f"{text}:{default_port}"
    try:
        host, port = split_host_port(text)
    except AddressError as err:
        raise StoreError(f"invalid Redis address {address!r}: {err}") from None
    return host or "127.0.0.1", port


@frozen
class MasterStatus:
    """What the liveness check learns of the master."""

    version: str  # redis_version
    replicas: int  # replicas connected to it (ROLE)
    named_by_sentinel: bool = False  # found through the sentinels (not RedisAddress)
    replica: bool = False  # a replica, accepted for reads (``replica_ok``)


@frozen
class RedisSettings:
    """Where Redis is: the ``Redis*`` configuration keys."""

    address: str
    password: str = ""
    db: int = 0
    sentinels: tuple[str, ...] = ()
    master_name: str = ""


def timed(d: Deferred[_T], seconds: float, clock: IReactorTime) -> Deferred[_T]:
    """``d`` failing with ``TimeoutError`` after ``seconds`` on ``clock``."""
    d.addTimeout(seconds, clock)
    return d


def observe(d: Deferred[_T]) -> Deferred[_T]:
    """A copy of ``d``'s result that can be cancelled without disturbing ``d``."""
    copy: Deferred[_T] = Deferred()

    def fire(result: _T | Failure) -> None:
        if not copy.called:
            if isinstance(result, Failure):
                copy.errback(result)
            else:
                copy.callback(result)

    d.addBoth(fire)
    return copy


def redis_factory(
    host: str, port: int, password: str, db: int | None, poolsize: int, lazy: bool = True
) -> RedisPool:
    """A txredisapi factory: UTF-8 text replies, numbers never converted.

    ``lazy=False`` only keeps txredisapi from logging failures we report ourselves; its
    per-connection retry lines are dropped too (:mod:`mirrorbits.store.retrylog`).
    """
    quiet_pool_retries()
    pool: RedisPool = txredisapi.RedisFactory(
        f"{host}:{port}", db, poolsize, isLazy=lazy, charset="utf-8",
        password=password or None, replyTimeout=REPLY_TIMEOUT, convertNumbers=False,
    )
    return pool


async def open_connection(
    reactor: IConnectingReactor, host: str, port: int, *, password: str = "", db: int | None = None,
    protocol: type[RedisConnection] | None = None, timeout: float = CONNECT_TIMEOUT,
) -> RedisConnection:
    """One connection (AUTH and SELECT done), not reconnecting; close it with ``close``."""
    factory = redis_factory(host, port, password, db, 1, lazy=False)
    if protocol is not None:
        factory.protocol = protocol
    endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    # txredisapi is untyped: its factory is an IProtocolFactory building RedisConnections
    connecting = endpoint.connect(cast(IProtocolFactory, factory))
    conn: RedisConnection | None = None
    try:
        conn = cast(RedisConnection, await timed(connecting, timeout, reactor))
        await timed(observe(factory.deferred), timeout, reactor)
    except Exception as exc:
        if conn is not None:
            conn.transport.abortConnection()
        if isinstance(exc, CancelledError):
            raise
        raise StoreError(f"{host}:{port}: {describe(exc)}") from exc
    return conn


def close(conn: RedisConnection, abort: bool = False) -> None:
    """Close a connection made by :func:`open_connection`."""
    conn.factory.stopped = True
    if abort:
        conn.transport.abortConnection()
    else:
        conn.transport.loseConnection()


def describe(exc: BaseException) -> str:
    """One line for a Redis failure; a refused password names the key to look at."""
    text = str(exc).strip()
    if text.startswith("Redis error: "):
        text = text[len("Redis error: "):]
    if "NOAUTH" in text:
        text += " (this Redis wants a password: RedisPassword)"
    elif "WRONGPASS" in text or "invalid password" in text:
        text += " (RedisPassword is not this Redis' password)"
    return text or type(exc).__name__


async def _ask_sentinel(reactor: IConnectingReactor, sentinel: str,
                        master_name: str) -> tuple[str, int]:
    host, port = parse_address(sentinel, DEFAULT_SENTINEL_PORT)
    conn = await open_connection(reactor, host, port)
    try:
        role = await timed(conn.role(), COMMAND_TIMEOUT, reactor)
        if not role or role[0] != "sentinel":
            raise StoreError(f"sentinel {sentinel} has role {role[0] if role else '?'}")
        addr = await timed(
            conn.sentinel_get_master_addr_by_name(master_name), COMMAND_TIMEOUT, reactor
        )
        if not addr:
            raise StoreError(f"sentinel {sentinel} knows no master named {master_name!r}")
        return str(addr[0]), int(addr[1])
    finally:
        close(conn)


#: What ``ROLE`` answers on a replica (Redis ≥ 5 says ``slave`` still).
REPLICA_ROLES = frozenset({"slave", "replica"})


async def check_master(reactor: IReactorTime, conn: RedisConnection, *,
                       replica_ok: bool = False) -> MasterStatus:
    """Require ``ROLE`` = master (or a replica, if ``replica_ok``) and Redis ≥ 3.2.0; its
    version and number of replicas."""
    role = await timed(conn.role(), COMMAND_TIMEOUT, reactor)
    replica = bool(role) and replica_ok and role[0] in REPLICA_ROLES
    if not role or (role[0] != "master" and not replica):
        raise StoreError(f"not a master (role: {role[0] if role else '?'})")
    info = await timed(conn.info("server"), COMMAND_TIMEOUT, reactor)
    version = str(info.get("redis_version", ""))
    if not version_at_least(version, MIN_REDIS_VERSION):
        raise StoreError(f"unsupported Redis version {version or '?'} (>= 3.2.0 required)")
    if replica:
        return MasterStatus(version, 0, replica=True)
    replicas = role[2] if len(role) > 2 and isinstance(role[2], list) else []
    return MasterStatus(version, len(replicas))


async def sentinel_master(reactor: IConnectingReactor,
                          settings: RedisSettings) -> tuple[str, int] | None:
    """The master's address according to the first sentinel that answers; None if none does
    (or no sentinel is configured)."""
    if not (settings.sentinels and settings.master_name):
        return None
    for sentinel in settings.sentinels:
        try:
            return await _ask_sentinel(reactor, sentinel, settings.master_name)
        except CancelledError:
            raise
        except Exception:
            continue
    return None


async def connect_master(
    reactor: IConnectingReactor, settings: RedisSettings, *, db: int | None,
    protocol: type[RedisConnection] | None = None, replica_ok: bool = False,
) -> tuple[RedisConnection, str, int, MasterStatus]:
    """Connect to the master (Sentinel first, then ``address``): ``(conn, host, port, status)``.

    ``conn`` has been AUTHenticated, has SELECTed ``db`` and passed :func:`check_master`.
    With ``replica_ok``, when no master answers, the first replica met is returned instead
    (``status.replica``): a Redis that refuses writes can still be read.
    """
    errors: list[str] = []
    fallback: tuple[RedisConnection, str, int, MasterStatus] | None = None
    found: tuple[RedisConnection, str, int, MasterStatus] | None = None

    async def attempt(
        origin: str, host: str, port: int
    ) -> tuple[RedisConnection, str, int, MasterStatus] | None:
        nonlocal fallback
        try:
            conn = await open_connection(
                reactor, host, port, password=settings.password, db=db, protocol=protocol
            )
        except CancelledError:
            raise
        except Exception as exc:
            errors.append(f"{origin}{describe(exc)}")
            return None
        try:
            status = await check_master(reactor, conn, replica_ok=replica_ok)
        except BaseException as exc:
            close(conn, abort=True)
            if not isinstance(exc, Exception) or isinstance(exc, CancelledError):
                raise
            errors.append(f"{origin}{host}:{port}: {describe(exc)}")
            return None
        if status.replica:
            if fallback is None:
                fallback = conn, host, port, status
            else:
                close(conn, abort=True)
            return None
        return conn, host, port, status

    try:
        if settings.sentinels and settings.master_name:
            for sentinel in settings.sentinels:
                try:
                    host, port = await _ask_sentinel(reactor, sentinel, settings.master_name)
                except CancelledError:
                    raise
                except Exception as exc:
                    errors.append(f"sentinel {sentinel}: {describe(exc)}")
                    continue
                found = await attempt(f"master from sentinel {sentinel}: ", host, port)
                if found is not None:
                    conn, host, port, status = found
                    found = conn, host, port, evolve(status, named_by_sentinel=True)
                    break
        if found is None:
            host, port = parse_address(settings.address)
            found = await attempt("", host, port)
    except BaseException:
        if fallback is not None:
            close(fallback[0], abort=True)
        raise
    if found is not None:
        if fallback is not None:
            close(fallback[0], abort=True)
        return found
    if fallback is not None:
        return fallback
    raise StoreError("; ".join(errors))
