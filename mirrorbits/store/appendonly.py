"""Turning on the private redis-server's append-only file once its data is loaded
(see :mod:`mirrorbits.embedded_aof`)."""

from __future__ import annotations

from twisted.internet.defer import CancelledError

from mirrorbits.embedded_aof import NotReady
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store.client import RedisConnection
from mirrorbits.store.connection import COMMAND_TIMEOUT, close, open_connection, timed

CONNECT_TIMEOUT = 1.0


async def turn_on_append_only(reactor: IConnectingReactor, host: str, port: int,
                              pid: int) -> bool:
    """``CONFIG SET appendonly yes`` on the redis-server of process ``pid`` at ``host:port``,
    once it answers with its data loaded; whether it was off.

    Raises :class:`NotReady` while the server does not answer, is another process or still
    loads its data; :class:`~mirrorbits.store.errors.StoreError` or a Redis error if the
    server refuses.
    """
    try:
        conn = await open_connection(reactor, host, port, timeout=CONNECT_TIMEOUT)
    except CancelledError:
        raise
    except Exception as err:
        raise NotReady(str(err)) from None
    try:
        return await _turn_on(reactor, conn, pid)
    finally:
        close(conn)


async def _turn_on(reactor: IConnectingReactor, conn: RedisConnection, pid: int) -> bool:
    info = await timed(conn.info("default"), COMMAND_TIMEOUT, reactor)
    if str(info.get("process_id", "")) != str(pid):
        raise NotReady(f"another server answers (pid {info.get('process_id', '?')})")
    if str(info.get("loading", "0")) != "0":
        raise NotReady("still loading its data")
    if str(info.get("aof_enabled", "0")) == "1":
        return False
    await timed(conn.execute_command("CONFIG", "SET", "appendonly", "yes"), COMMAND_TIMEOUT,
                reactor)
    return True
