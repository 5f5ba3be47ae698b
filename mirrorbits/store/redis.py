"""The connection to Mirrorbits' Redis: master discovery, liveness, DB-version gate.

:class:`RedisService` connects in the background (never failing start-up), keeps
checking the master every second, reconnects while Redis is down, and only hands
out its connection pool once :func:`~mirrorbits.store.dbversion.ensure_db_version`
succeeded. Replies are decoded as UTF-8 text and numbers are never converted.

With Sentinel, each check also asks the sentinels which node is the master: after a
failover the service moves to the new master at once, instead of writing for seconds
more to the former one (which keeps acting as a master until the sentinels demote it,
and then drops everything written to it meanwhile). Each link to a master has a
``generation`` number, so that writers can tell a new master from the one they wrote to.

When no master answers but a replica does (made one by ``REPLICAOF``, a failover under
way), the service links to it read-only: :meth:`RedisService.reading_client` and
:meth:`RedisService.read_client` read from it, the writers' :meth:`~RedisService.client`
and :meth:`~RedisService.session` stay unusable, and every second a master is looked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import txredisapi
from attrs import define, field
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint

from mirrorbits.logs import Logger
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient, RedisConnection, RedisPool
from mirrorbits.store.connection import (
    CONNECT_TIMEOUT,
    MasterStatus,
    RedisSettings,
    check_master,
    close,
    connect_master,
    describe,
    observe,
    parse_version,
    redis_factory,
    sentinel_master,
    timed,
    version_at_least,
)
from mirrorbits.store.dbversion import check_db_version, ensure_db_version
from mirrorbits.store.errors import (
    READ_ONLY_REPLICA,
    DatabaseNotReady,
    ReadOnlyReplica,
    StoreError,
)
from mirrorbits.store.loop import ReconnectLoop

__all__ = ["MasterSession", "RedisService", "RedisSettings", "parse_version",
           "version_at_least"]

CHECK_INTERVAL = 1.0  # seconds between two liveness checks of the master
RETRY_MIN, RETRY_MAX = 0.1, 1.0  # back-off bounds (seconds) while down or not checked
# A master seen with a replica this recently is expected to have one: its writes are not
# safe from a failover until a replica acknowledged them (its replica may just have been
# promoted, which leaves it alone).
REPLICA_MEMORY = 60.0
# A read while the master is being reached again waits for it, during the first seconds of
# an outage (a failover takes a few) and for a bounded time, instead of failing at once.
SWITCH_WAIT = 10.0  # seconds into an outage during which reads wait
READ_WAIT = 2.0  # seconds one read may wait

log = Logger()


class _MasterMoved(Exception):
    """The sentinels name another master than the one connected to."""


@define(eq=False)
class MasterSession:
    """One connection of the pool, lent to one writer alone (see :meth:`RedisService.session`).

    ``WAIT`` counts the replicas that acknowledged the writes of *its own* connection, so a
    writer that needs it sends both its writes and the ``WAIT`` here.
    """

    conn: RedisConnection
    generation: int  # the link it belongs to: a new number after each (re)connection
    expects_replica: bool  # the master had a replica within REPLICA_MEMORY seconds
    abandoned: bool = False

    def abandon(self) -> None:
        """Close the connection: a reply is still due that nobody will read."""
        self.abandoned = True
        self.conn.transport.abortConnection()


@define
class _Link:
    """A live connection to the master: a monitor connection and the command pool."""

    settings: RedisSettings
    conn: RedisConnection
    pool: RedisPool
    host: str
    port: int
    version: str
    generation: int
    named_by_sentinel: bool
    read_only: bool = False  # a replica: read from, never written to
    replica_seen: float | None = None  # when the master last had a replica

    def saw(self, status: MasterStatus, now: float) -> None:
        if status.replicas:
            self.replica_seen = now

    def close(self, abort: bool) -> Deferred[object]:
        close(self.conn, abort)
        if abort:
            for pooled in list(self.pool.pool):
                pooled.transport.abortConnection()
        # Anyone still waiting for a pooled connection would wait forever.
        queue = self.pool.connectionQueue
        for waiter in list(queue.waiting):
            waiter.cancel()
        peekers, queue.peekers = queue.peekers, []
        for waiter in peekers:
            waiter.cancel()
        done: Deferred[object] = self.pool.disconnect()
        return done


@define(eq=False)
class RedisService(ReconnectLoop):
    """The shared Redis connection pool, usable once connected and the DB version checked."""

    address: str
    password: str
    db: int
    sentinels: tuple[str, ...]
    master_name: str
    reactor: IConnectingReactor
    poolsize: int = 10
    _settings: RedisSettings = field(init=False)
    _link: _Link | None = field(init=False, default=None)
    _db_checked: bool = field(init=False, default=False)
    _state: str = field(init=False, default="")
    _last_error: str = field(init=False, default="")
    _version: str = field(init=False, default="")
    _loop: Deferred[None] | None = field(init=False, default=None)
    _sleeping: Deferred[None] | None = field(init=False, default=None)
    _waiters: list[Deferred[None]] = field(init=False, factory=list)
    _read_waiters: list[Deferred[None]] = field(init=False, factory=list)
    _generation: int = field(init=False, default=0)
    _lost_at: float | None = field(init=False, default=None)  # when a working link was lost
    _replica_said: tuple[str, int] | None = field(init=False, default=None)  # since a master
    _master_listeners: list[Callable[[str, int], None]] = field(init=False, factory=list)

    name = "redis"
    loop_name = "Redis connection loop"

    def __attrs_post_init__(self) -> None:
        self._settings = RedisSettings(
            self.address, self.password, self.db, tuple(self.sentinels), self.master_name
        )

    @property
    def ready(self) -> bool:
        """Connected to the master and the DB version checked (or upgraded)."""
        link = self._link
        return self.readable and link is not None and not link.read_only

    @property
    def readable(self) -> bool:
        """Connected to the master, or to a replica, and the DB version checked."""
        link = self._link
        return (link is not None and self._db_checked and bool(link.conn.connected)
                and link.settings == self._settings)

    @property
    def redis_version(self) -> tuple[int, int, int]:
        """The version of the last master connected to, ``(0, 0, 0)`` before that."""
        return parse_version(self._version)

    def whenReady(self) -> Deferred[None]:
        """Fires (with None) once the database is ready."""
        if self.ready:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def whenReadable(self) -> Deferred[None]:
        """Fires (with None) once the database can be read (a master, or a replica)."""
        if self.readable:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._read_waiters.append(d)
        return d

    def client(self) -> RedisClient:
        """The connection pool handler; ``DatabaseNotReady`` while unusable."""
        if not self.ready or self._link is None:
            raise DatabaseNotReady("database not ready")
        return self._link.pool.handler

    def read_client(self) -> RedisClient:
        """For reads only: the master's pool handler, or a replica's while no master
        answers; ``DatabaseNotReady`` when neither can be read."""
        if not self.readable or self._link is None:
            raise DatabaseNotReady("database not ready")
        return self._link.pool.handler

    def require_master(self) -> None:
        """For a command about to write: :class:`ReadOnlyReplica` while only a replica is
        linked (nothing written yet, so nothing half-written), else nothing (a Redis down
        leaves the writer's own :meth:`client` to say so)."""
        if self.readable and not self.ready:
            raise ReadOnlyReplica(READ_ONLY_REPLICA)

    def reading_client(self) -> RedisClient:
        """:meth:`client`, except early in an outage (the master is being switched): then a
        stand-in whose commands wait (at most ``READ_WAIT`` s) for the master to be back.

        For the cache's reads, so that a cache miss during a failover is answered instead of
        failing; before the first connection and later in an outage, fails at once.
        """
        if self.readable:
            return self.read_client()
        now = self.reactor.seconds()
        lost = self._lost_at
        if lost is None and self._link is not None and self._db_checked:
            lost = now  # the connection just dropped; the loop has not handled it yet
        if not self.running or lost is None or now - lost > SWITCH_WAIT:
            raise DatabaseNotReady("database not ready")
        return _WaitingClient(self)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[MasterSession]:
        """Lend one pool connection to the caller alone (``DatabaseNotReady`` while unusable).

        A caller that stops waiting for a reply must :meth:`~MasterSession.abandon` it.
        """
        if not self.ready or self._link is None:
            raise DatabaseNotReady("database not ready")
        link = self._link
        conn = await timed(link.pool.getConnection(), CONNECT_TIMEOUT, self.reactor)
        seen = link.replica_seen
        expects = seen is not None and self.reactor.seconds() - seen <= REPLICA_MEMORY
        lent = MasterSession(conn, link.generation, expects)
        try:
            yield lent
        finally:
            if conn.connected and not lent.abandoned:
                link.pool.connectionQueue.put(conn)

    def on_master(self, callback: Callable[[str, int], None]) -> None:
        """Call ``callback(host, port)`` each time the service connects to a master."""
        self._master_listeners.append(callback)

    def reconfigure(
        self, address: str, password: str, db: int, sentinels: tuple[str, ...], master_name: str
    ) -> None:
        """New connection settings (SIGHUP); reconnects if they changed."""
        settings = RedisSettings(address, password, db, tuple(sentinels), master_name)
        if settings == self._settings:
            return
        self.address, self.password, self.db = address, password, db
        self.sentinels, self.master_name = tuple(sentinels), master_name
        self._settings = settings
        log.info("Redis settings changed: reconnecting")
        self._wake()

    async def _after_loop(self) -> None:
        await self._drop_link(abort=False)

    async def _run(self) -> None:
        delay = RETRY_MIN
        while self.running:
            try:
                if self._link is not None and self._link.settings != self._settings:
                    await self._drop_link(abort=False)
                if self._link is None:
                    await self._connect()
                    delay = RETRY_MIN
                if not self._db_checked:
                    await self._check_db()
                    delay = RETRY_MIN
                await self._pause(CHECK_INTERVAL)
                if self.running and self._link is not None and self._link.read_only:
                    await self._connect()  # a master again, or another replica?
                elif self.running:
                    await self._check_alive()
            except _MasterMoved as moved:
                if not self.running:
                    break
                log.warn("Redis master moved: {reason}", reason=str(moved))
                await self._drop_link(abort=False)
            except Exception as exc:
                if not self.running:
                    break
                await self._handle_failure(exc)
                await self._pause(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _connect(self) -> None:
        settings = self._settings
        conn, host, port, status = await connect_master(self.reactor, settings, db=settings.db,
                                                        replica_ok=True)
        current = self._link
        if current is not None:  # a replica read from: keep it, or leave it
            if (status.replica and (current.host, current.port) == (host, port)
                    and current.conn.connected and current.settings == settings):
                close(conn)
                return
            await self._drop_link(abort=False)  # reads wait for the new link (READ_WAIT)
        pool = redis_factory(host, port, settings.password, settings.db, self.poolsize)
        pool.startConnecting(HostnameEndpoint(self.reactor, host, port, timeout=CONNECT_TIMEOUT))
        if not status.replica:  # a link to a master: writers can tell it from the last one
            self._generation += 1
        link = _Link(settings, conn, pool, host, port, status.version, self._generation,
                     status.named_by_sentinel, status.replica)
        link.saw(status, self.reactor.seconds())
        try:
            await timed(observe(pool.deferred), CONNECT_TIMEOUT * 2, self.reactor)
        except BaseException as exc:
            link.close(abort=True).addErrback(lambda _: None)
            if isinstance(exc, Exception) and not isinstance(exc, CancelledError):
                raise StoreError(f"{host}:{port}: pool: {describe(exc)}") from exc
            raise
        self._link, self._version = link, status.version
        conn.whenDisconnected().addCallback(lambda _: self._wake())  # notice at once
        self._connected_once()
        if status.replica:
            if self._replica_said != (host, port):  # said once, not at each retry
                self._replica_said = host, port
                self._state, self._last_error = "replica", ""
                log.warn("Redis {host}:{port} is a replica: read from, and writes wait until "
                         "a master answers", host=host, port=port)
            return
        self._state, self._last_error, self._replica_said = "up", "", None
        outage.connected()
        log.info("Connected to redis master {host}:{port} (version {version})",
                 host=host, port=port, version=status.version)
        for callback in list(self._master_listeners):
            try:
                callback(host, port)
            except Exception:
                log.failure("Redis master listener failed")

    async def _check_db(self) -> None:
        link = self._link
        assert link is not None
        if link.read_only:
            version = await check_db_version(link.pool.handler)
        else:
            version = await ensure_db_version(link.pool.handler, self.reactor)
        self._db_checked = True
        self._last_error = ""
        log.debug("Database format version {version}", version=version)
        # Run outside this loop's call stack, so a waiter may even stop the service.
        self.reactor.callLater(0, self._notify)

    def _notify(self) -> None:
        if not self.readable:
            return
        self._lost_at = None
        waiters, self._read_waiters = self._read_waiters, []
        if self.ready:
            waiters, self._waiters = waiters + self._waiters, []
        for d in waiters:
            d.callback(None)

    async def _check_alive(self) -> None:
        link = self._link
        if link is None:
            return
        try:
            status = await check_master(self.reactor, link.conn)
        except CancelledError:
            raise
        except Exception as exc:
            raise ConnectionError(f"{link.host}:{link.port}: {describe(exc)}") from exc
        link.saw(status, self.reactor.seconds())
        if not link.named_by_sentinel:  # reached through RedisAddress: the sentinels failed
            return
        named = await sentinel_master(self.reactor, link.settings)
        if named is not None and named != (link.host, link.port) and self._link is link:
            raise _MasterMoved(f"the sentinels name {named[0]}:{named[1]} instead of "
                               f"{link.host}:{link.port}")

    async def _handle_failure(self, exc: Exception) -> None:
        """Log once per state change; drop a link that no longer works."""
        reason = describe(exc)
        # A failed liveness check (ConnectionError: lost, or no longer a master) ends the
        # link; after another failure (the DB check), the link is kept if it still works.
        alive = (self._link is not None and bool(self._link.conn.connected)
                 and not self._link.read_only  # a replica's: look for a master afresh
                 and not isinstance(exc, ConnectionError | txredisapi.ConnectionError))
        if alive:
            assert self._link is not None
            try:  # the DB check failed: is the connection still good?
                await check_master(self.reactor, self._link.conn)
            except Exception:
                alive = False
        if alive:
            if reason != self._last_error:
                log.error("Database check failed: {reason}", reason=reason)
            self._last_error = reason
            return
        await self._drop_link(abort=True)
        if self._state == "" and self._starting_quietly():
            log.debug("Database not reachable yet: {reason}", reason=reason)
            return
        if self._state != "down":
            log.error("Database is down: {reason}", reason=reason)
        else:
            log.debug("Database is still down: {reason}", reason=reason)
        self._state, self._last_error = "down", reason

    async def _drop_link(self, abort: bool) -> None:
        link, self._link = self._link, None
        if self._db_checked and self.running:
            self._lost_at = self.reactor.seconds()
        self._db_checked = False
        if link is not None:
            with contextlib.suppress(Exception):
                await timed(link.close(abort), CONNECT_TIMEOUT, self.reactor)


class _WaitingClient:
    """Stands for the pool handler while the master is being reached again: each command
    waits for the service to be readable (at most ``READ_WAIT`` seconds), then runs."""

    def __init__(self, service: RedisService) -> None:
        self._service = service

    def __getattr__(self, command: str) -> Callable[..., Deferred[Any]]:
        def later(*args: Any, **kwargs: Any) -> Deferred[Any]:
            return Deferred.fromCoroutine(self._run(command, args, kwargs))

        return later

    async def _run(self, command: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        service = self._service
        try:
            await timed(service.whenReadable(), READ_WAIT, service.reactor)
        except Exception:
            raise DatabaseNotReady("database not ready") from None
        return await getattr(service.read_client(), command)(*args, **kwargs)
