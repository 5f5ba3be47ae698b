"""The pub/sub subscriber (§3.3): the four server-wide channels, kept alive and re-subscribed.

A subscriber connection can die silently, so it is PINGed every few seconds and
dropped when no answer comes. After reconnecting and subscribing again, the
``on_reconnect`` callbacks run: messages sent meanwhile were lost, so whatever
they keep up to date (the caches) must be cleared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import cast

import txredisapi
from attrs import define, field
from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred, succeed

from mirrorbits.logs import Logger
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store import keys, resp
from mirrorbits.store.client import RedisClient, Subscriber
from mirrorbits.store.connection import (
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    RedisSettings,
    close,
    connect_master,
    describe,
    observe,
    timed,
)
from mirrorbits.store.loop import ReconnectLoop

PING_INTERVAL = 5.0  # seconds
PING_TIMEOUT = 3.0  # seconds
#: Messages handed on per reactor turn (about a millisecond of a storm's work).
MESSAGES_PER_TURN = 200
RETRY_MIN, RETRY_MAX = 0.05, 2.0  # reconnection back-off bounds (seconds)

log = Logger()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class _Subscriber(txredisapi.SubscriberProtocol):
    """Hands every message to ``deliver(channel, message)``.

    Replies are read here (:mod:`mirrorbits.store.resp`), all those complete in what was
    received at once: a message goes straight to ``deliver``, any other reply
    (subscriptions, PING, errors) to txredisapi's queue of replies to commands.
    """

    deliver: Callable[[str, str], None] | None = None
    received_bytes = 0  # read so far: any data after a PING shows the connection alive
    _unread = b""  # received, not read yet (the rest of a read, a reply not whole yet)
    _resuming = False  # reading paused until the next reactor turn

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        self.received_bytes += len(data)
        self._unread = self._unread + data if self._unread else data
        if not self._resuming:
            self._read()

    def _resume(self) -> None:
        self._resuming = False
        if self.transport is not None and self.connected:
            self.transport.resumeProducing()
            self._read()

    def _read(self) -> None:
        """Hand on what was received, at most :data:`MESSAGES_PER_TURN` messages; the rest
        on the next reactor turn (reading paused meanwhile): the requests are answered
        between, as with a storm of them nothing else would run for milliseconds."""
        buffer = self._unread
        pos, size, budget = 0, len(buffer), MESSAGES_PER_TURN
        try:
            while pos < size:
                if buffer.startswith(resp.MESSAGE, pos):
                    if not budget:
                        self._resuming = True
                        self.transport.pauseProducing()
                        self.callLater(0, self._resume)
                        break
                    message = resp.read_message(buffer, pos)
                    if message is None:
                        break
                    channel, payload, pos = message
                    budget -= 1
                    if self.deliver is not None:
                        self.deliver(channel, payload)
                    continue
                reply = resp.read_reply(buffer, pos)
                if reply is None:
                    break
                value, pos = reply
                self.replyReceived(value)
        except resp.ProtocolError as exc:
            log.warn("Pub/sub reply unreadable: {error}", error=str(exc))
            self._unread = b""
            self.transport.abortConnection()
            return
        self._unread = buffer[pos:] if pos < size else b""

    def replyReceived(self, reply: object) -> None:
        """A reply to a command. A list of more than three items goes whole to its command:
        txredisapi keeps only the last three (a replica's ``ROLE`` answer lost its role)."""
        if isinstance(reply, list) and len(reply) > 3:
            self.replyQueue.put(reply)
        else:
            super().replyReceived(reply)

    def messageReceived(self, pattern: object, channel: object, message: object) -> None:
        if self.deliver is not None:
            self.deliver(_text(channel), _text(message))


async def publish(client: RedisClient, channel: str, message: str) -> int:
    """PUBLISH ``message``; the number of subscribers that received it."""
    return int(await client.publish(channel, message))


async def announce_node(client: RedisClient, redis_db: int, node_id: str) -> None:
    """Tell the other nodes that ``node_id`` runs, on ``_mirrorbits_cluster`` (§15.1)."""
    await publish(client, keys.CHANNEL_CLUSTER, keys.cluster_announce(redis_db, node_id))


@define(eq=False)
class PubSubService(ReconnectLoop):
    """Subscribes to :attr:`channels` (all four) and dispatches messages to callbacks."""

    address: str
    password: str
    reactor: IConnectingReactor
    sentinels: tuple[str, ...] = ()
    master_name: str = ""
    ping_interval: float = PING_INTERVAL
    ping_timeout: float = PING_TIMEOUT
    #: What it subscribes to: a process whose HTTP workers keep the caches leaves out the
    #: files' channels (an invalidation storm is theirs to read, 10,000 messages a second).
    channels: tuple[str, ...] = keys.ALL_CHANNELS
    _settings: RedisSettings = field(init=False)
    _handlers: dict[str, list[Callable[[str], None]]] = field(init=False, factory=dict)
    _reconnect_handlers: list[Callable[[], None]] = field(init=False, factory=list)
    _conn: Subscriber | None = field(init=False, default=None)
    _where: tuple[str, int] | None = field(init=False, default=None)  # where _conn goes
    _loop: Deferred[None] | None = field(init=False, default=None)
    _sleeping: Deferred[None] | None = field(init=False, default=None)
    _subscribed_before: bool = field(init=False, default=False)
    _moving: bool = field(init=False, default=False)  # closed on purpose by follow_master
    _down: bool = field(init=False, default=False)
    _waiters: list[Deferred[None]] = field(init=False, factory=list)

    name = "pubsub"
    loop_name = "Pub/sub loop"

    def __attrs_post_init__(self) -> None:
        self._settings = RedisSettings(
            self.address, self.password, 0, tuple(self.sentinels), self.master_name
        )

    def on_message(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(message)`` for each message on ``channel`` (several allowed)."""
        self._handlers.setdefault(channel, []).append(callback)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after subscribing again following a lost connection."""
        self._reconnect_handlers.append(callback)

    @property
    def subscribed(self) -> bool:
        return self._conn is not None and bool(self._conn.connected)

    def whenReady(self) -> Deferred[None]:
        """Fires once subscribed (at once if already subscribed)."""
        if self.subscribed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def reconfigure(
        self, address: str, password: str, sentinels: tuple[str, ...] = (), master_name: str = ""
    ) -> None:
        """New connection settings (SIGHUP); reconnects if they changed."""
        settings = RedisSettings(address, password, 0, tuple(sentinels), master_name)
        if settings == self._settings:
            return
        self.address, self.password = address, password
        self.sentinels, self.master_name = tuple(sentinels), master_name
        self._settings = settings
        if self._conn is not None:
            close(self._conn)
        self._wake()

    def follow_master(self, host: str, port: int) -> None:
        """The commands now go to the master ``host:port``: with Sentinel, subscribe there too.

        After a failover the former master keeps running as a master for a while; messages
        published on the new one would not reach a subscriber left behind.
        """
        if not (self._settings.sentinels and self._settings.master_name):
            return
        if self._conn is None or self._where in (None, (host, port)):
            return
        log.info("Pub/sub moves to the new master {host}:{port}", host=host, port=port)
        self._moving = True
        close(self._conn)

    def _interrupt(self) -> None:
        self._wake()
        if self._conn is not None:
            close(self._conn)

    def _deliver(self, channel: str, message: str) -> None:
        for callback in list(self._handlers.get(channel, ())):
            try:
                callback(message)
            except Exception:
                log.failure("Pub/sub handler for {channel} failed", channel=channel)

    async def _run(self) -> None:
        delay = RETRY_MIN
        while self.running:
            try:
                conn, host, port, _ = await connect_master(
                    self.reactor, self._settings, db=None, protocol=_Subscriber
                )
            except Exception as exc:
                if not self.running:
                    break
                self._went_down(describe(exc))
                await self._pause(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_MIN
            self._where = (host, port)
            # a _Subscriber, as asked of connect_master
            reason = await self._serve(cast(Subscriber, conn), f"{host}:{port}")
            self._where = None
            if self._moving:
                self._moving = False
                continue
            if self.running:
                self._went_down(reason)
                await self._pause(delay)

    async def _serve(self, conn: Subscriber, where: str) -> str:
        """Subscribe on ``conn`` and keep it alive until it is lost; why it ended."""
        lost = conn.whenDisconnected()
        keepalive = task.LoopingCall(self._ping, conn)
        keepalive.clock = self.reactor
        try:
            conn.deliver = self._deliver
            await timed(conn.subscribe(list(self.channels)), COMMAND_TIMEOUT, self.reactor)
            if not conn.connected:
                return "connection lost while subscribing"
            self._conn = conn
            self._came_up(where)
            keepalive.start(self.ping_interval, now=False)
            if self.running:
                await lost
            return "connection lost"
        except CancelledError:
            raise
        except Exception as exc:
            return describe(exc)
        finally:
            self._conn = None
            if keepalive.running:
                keepalive.stop()
            if conn.connected:
                close(conn)
                with contextlib.suppress(Exception):
                    await timed(lost, CONNECT_TIMEOUT, self.reactor)

    async def _ping(self, conn: Subscriber) -> None:
        received = conn.received_bytes
        answer = conn.ping()  # never cancelled: its reply keeps its place in the queue
        try:
            await timed(observe(answer), self.ping_timeout, self.reactor)
            return
        except Exception as exc:
            error = describe(exc)
        # A reactor kept busy (a cache fill, a storm of messages) may not have read the answer
        # yet: one more turn first. The answer, or any message since the PING, shows the
        # connection alive; dropping it would clear every cache for nothing.
        await task.deferLater(self.reactor, 0, lambda: None)
        if conn.received_bytes != received:
            return
        log.warn("Pub/sub PING failed: {error}", error=error)
        conn.transport.abortConnection()

    def _came_up(self, where: str) -> None:
        self._connected_once()
        if self._down or self._subscribed_before:
            log.info("Pub/sub subscribed again on {where}", where=where)
        else:
            log.debug("Pub/sub subscribed on {where}", where=where)
        again, self._subscribed_before, self._down = self._subscribed_before, True, False
        # Run outside this loop's call stack, so a callback may even stop the service.
        self.reactor.callLater(0, self._notify, again)

    def _notify(self, reconnected: bool) -> None:
        if reconnected:
            for callback in list(self._reconnect_handlers):
                try:
                    callback()
                except Exception:
                    log.failure("Pub/sub reconnection handler failed")
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _went_down(self, reason: str) -> None:
        if not self._subscribed_before and self._starting_quietly():
            log.debug("Pub/sub not subscribed yet: {reason}", reason=reason)
            return
        if not self._down:
            log.warn("Pub/sub connection lost: {reason}", reason=reason)
        else:
            log.debug("Pub/sub still down: {reason}", reason=reason)
        self._down = True
