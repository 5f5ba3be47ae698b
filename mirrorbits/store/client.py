"""The txredisapi operations the store uses, typed (txredisapi has no annotations).

The connections are made with UTF-8 text replies and no number conversion
(:func:`mirrorbits.store.connection.redis_factory`): bulk replies are ``str``, integer
replies ``int``. :class:`RedisClient` is what the pool handler (and one connection) offers;
a WATCH or MULTI hands out a :class:`RedisTransaction`, a pipeline a :class:`RedisPipeline`.
:class:`RedisConnection` is one connection (the pool's, or one opened alone) and
:class:`RedisPool` the reconnecting pool (txredisapi's factory). Only the commands used here
are declared: a new one is added here first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint, ITCPTransport

#: An argument of a Redis command.
Value = str | bytes | int | float


class RedisClient(Protocol):
    """The commands sent through the pool handler or one connection."""

    def execute_command(self, *args: Value) -> Deferred[Any]:
        """A command given by name; its reply's shape depends on the command."""

    def delete(self, keys: str | Sequence[str]) -> Deferred[int]: ...

    def exists(self, key: str) -> Deferred[int]: ...

    def expire(self, key: str, seconds: int) -> Deferred[int]: ...

    def rename(self, source: str, destination: str) -> Deferred[str]: ...

    def type(self, key: str) -> Deferred[str]: ...

    def scan(self, cursor: str, pattern: str, count: int) -> Deferred[tuple[str, list[str]]]: ...

    def get(self, key: str) -> Deferred[str | None]: ...

    def set(self, key: str, value: Value, expire: int | None = None,
            pexpire: int | None = None, only_if_not_exists: bool = False,
            only_if_exists: bool = False) -> Deferred[str | None]: ...

    def incr(self, key: str) -> Deferred[int]: ...

    def hget(self, key: str, field: str | bytes) -> Deferred[str | None]: ...

    def hset(self, key: str, field: str, value: Value) -> Deferred[int]: ...

    def hmget(self, key: str, fields: Sequence[str]) -> Deferred[list[str | None]]: ...

    def hmset(self, key: str, mapping: Mapping[str, Value]) -> Deferred[str]: ...

    def hgetall(self, key: str) -> Deferred[dict[str, str]]: ...

    def hkeys(self, key: str) -> Deferred[list[str]]: ...

    def hdel(self, key: str, fields: str | Sequence[str]) -> Deferred[int]: ...

    def rpush(self, key: str, values: Value | Sequence[Value]) -> Deferred[int]: ...

    def lrange(self, key: str, start: int, end: int) -> Deferred[list[str]]: ...

    def ltrim(self, key: str, start: int, end: int) -> Deferred[str]: ...

    def sadd(self, key: str, members: Value | Sequence[Value]) -> Deferred[int]: ...

    def srem(self, key: str, members: Value | Sequence[Value]) -> Deferred[int]: ...

    def smembers(self, key: str) -> Deferred[AbstractSet[str]]: ...

    def scard(self, key: str) -> Deferred[int]: ...

    def sdiff(self, keys: Sequence[str]) -> Deferred[AbstractSet[str]]: ...

    def sscan(self, key: str, cursor: str, pattern: str | None,
              count: int) -> Deferred[tuple[str, list[str]]]: ...

    def publish(self, channel: str, message: str) -> Deferred[int]: ...

    def watch(self, keys: str | Sequence[str]) -> Deferred[RedisTransaction]: ...

    def multi(self) -> Deferred[RedisTransaction]: ...

    def pipeline(self) -> Deferred[RedisPipeline]: ...


class RedisTransaction(RedisClient, Protocol):
    """One connection under WATCH or in MULTI: commands are queued until :meth:`commit`."""

    connected: int
    inMulti: bool

    def unwatch(self) -> Deferred[str]: ...

    def discard(self) -> Deferred[str]: ...

    def commit(self) -> Deferred[list[Any]]:
        """EXEC: each queued command's reply (an error as its exception), in order."""


class RedisPipeline(RedisClient, Protocol):
    """Commands sent at once: their replies come with :meth:`execute_pipeline`."""

    def execute_pipeline(self) -> Deferred[list[Any]]: ...


class RedisConnection(RedisClient, Protocol):
    """One connection: a txredisapi protocol, lent by the pool or opened alone."""

    connected: int
    transport: ITCPTransport
    factory: RedisPool

    def whenDisconnected(self) -> Deferred[object]: ...

    def ping(self) -> Deferred[str]: ...

    def role(self) -> Deferred[list[object]]:
        """ROLE: ``[role, ...]``, whose other items depend on the role."""

    def info(self, section: str) -> Deferred[dict[str, str]]: ...

    def sentinel_get_master_addr_by_name(self, name: str) -> Deferred[list[str] | None]: ...


class Subscriber(RedisConnection, Protocol):
    """A connection in subscriber mode: each message goes to ``deliver(channel, message)``."""

    deliver: Callable[[str, str], None] | None
    received_bytes: int  # read so far

    def subscribe(self, channels: Sequence[str]) -> Deferred[object]: ...


class ConnectionQueue(Protocol):
    """The pool's idle connections (txredisapi's ``PeekableQueue``)."""

    waiting: list[Deferred[RedisConnection]]
    peekers: list[Deferred[RedisConnection]]

    def put(self, connection: RedisConnection) -> None: ...


class RedisPool(Protocol):
    """txredisapi's connection factory: a pool of connections behind one ``handler``."""

    handler: RedisClient
    pool: list[RedisConnection]
    connectionQueue: ConnectionQueue
    deferred: Deferred[object]  # fires once every connection of the pool is made
    protocol: type[RedisConnection]
    stopped: bool

    def startConnecting(self, endpoint: IStreamClientEndpoint) -> None: ...

    def getConnection(self) -> Deferred[RedisConnection]: ...

    def disconnect(self) -> Deferred[object]: ...
