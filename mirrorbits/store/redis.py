"""The connection to Mirrorbits' Redis: master discovery, liveness, DB-version gate.

:class:`RedisService` connects in the background (never failing start-up), keeps
checking the master every second, reconnects while Redis is down, and only hands
out its connection pool once :func:`~mirrorbits.store.dbversion.ensure_db_version`
succeeded. Replies are decoded as UTF-8 text and numbers are never converted.
"""

from __future__ import annotations

import contextlib
from typing import Any

import txredisapi
from attrs import define, field
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint

from mirrorbits.logs import Logger
from mirrorbits.store.commands import RedisClient
from mirrorbits.store.connection import (
    CONNECT_TIMEOUT,
    RedisSettings,
    check_master,
    close,
    connect_master,
    describe,
    observe,
    parse_version,
    redis_factory,
    timed,
    version_at_least,
)
from mirrorbits.store.dbversion import ensure_db_version
from mirrorbits.store.errors import DatabaseNotReady, StoreError
from mirrorbits.store.loop import ReconnectLoop

__all__ = ["RedisService", "RedisSettings", "parse_version", "version_at_least"]

CHECK_INTERVAL = 1.0  # seconds between two liveness checks of the master
RETRY_MIN, RETRY_MAX = 0.1, 1.0  # back-off bounds (seconds) while down or not checked

log = Logger()


@define
class _Link:
    """A live connection to the master: a monitor connection and the command pool."""

    settings: RedisSettings
    conn: Any
    pool: Any
    host: str
    port: int
    version: str

    def close(self, abort: bool) -> Deferred[Any]:
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
        done: Deferred[Any] = self.pool.disconnect()
        return done


@define(eq=False)
class RedisService(ReconnectLoop):
    """The shared Redis connection pool, usable once connected and the DB version checked."""

    address: str
    password: str
    db: int
    sentinels: tuple[str, ...]
    master_name: str
    reactor: Any  # IReactorTCP & IReactorTime
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

    def client(self) -> RedisClient:
        """The connection pool handler; ``DatabaseNotReady`` while unusable."""
        if not self.ready or self._link is None:
            raise DatabaseNotReady("database not ready")
        return self._link.pool.handler

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
                if self.running:
                    await self._check_alive()
            except Exception as exc:
                if not self.running:
                    break
                await self._handle_failure(exc)
                await self._pause(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _connect(self) -> None:
        settings = self._settings
        conn, host, port, version = await connect_master(self.reactor, settings, db=settings.db)
        pool = redis_factory(host, port, settings.password, settings.db, self.poolsize)
        pool.startConnecting(HostnameEndpoint(self.reactor, host, port, timeout=CONNECT_TIMEOUT))
        link = _Link(settings, conn, pool, host, port, version)
        try:
            await timed(observe(pool.deferred), CONNECT_TIMEOUT * 2, self.reactor)
        except BaseException as exc:
            link.close(abort=True).addErrback(lambda _: None)
            if isinstance(exc, Exception) and not isinstance(exc, CancelledError):
                raise StoreError(f"{host}:{port}: pool: {describe(exc)}") from exc
            raise
        self._link, self._version = link, version
        conn.whenDisconnected().addCallback(lambda _: self._wake())  # notice at once
        self._state, self._last_error = "up", ""
        log.info("Connected to redis master {host}:{port} (version {version})",
                 host=host, port=port, version=version)

    async def _check_db(self) -> None:
        assert self._link is not None
        version = await ensure_db_version(self._link.pool.handler, self.reactor)
        self._db_checked = True
        self._last_error = ""
        log.debug("Database format version {version}", version=version)
        # Run outside this loop's call stack, so a waiter may even stop the service.
        self.reactor.callLater(0, self._notify)

    def _notify(self) -> None:
        if not self.ready:
            return
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    async def _check_alive(self) -> None:
        link = self._link
        if link is None:
            return
        try:
            await check_master(self.reactor, link.conn)
        except CancelledError:
            raise
        except Exception as exc:
            raise ConnectionError(f"{link.host}:{link.port}: {describe(exc)}") from exc

    async def _handle_failure(self, exc: Exception) -> None:
        """Log once per state change; drop a link that no longer works."""
        reason = describe(exc)
        alive = self._link is not None and bool(self._link.conn.connected)
        if alive and not isinstance(exc, ConnectionError | txredisapi.ConnectionError):
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
        if self._state != "down":
            log.error("Database is down: {reason}", reason=reason)
        else:
            log.debug("Database is still down: {reason}", reason=reason)
        self._state, self._last_error = "down", reason

    async def _drop_link(self, abort: bool) -> None:
        link, self._link = self._link, None
        self._db_checked = False
        if link is not None:
            with contextlib.suppress(Exception):
                await timed(link.close(abort), CONNECT_TIMEOUT, self.reactor)
