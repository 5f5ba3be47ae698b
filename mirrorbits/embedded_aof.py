"""The private redis-server's append-only file: at most a second of writes lost to a kill.

A redis-server started with ``--appendonly yes`` loads its append-only file only: on a data
directory holding a snapshot (``dump.rdb``, written by earlier versions) and no such file,
it would start empty. So the server starts with ``--appendonly no`` until the directory has
one, and once it answers (its data loaded), ``CONFIG SET appendonly yes`` writes the file
from the loaded data. Redis ≥ 7 keeps it as a manifest and files under ``appendonlydir/``,
Redis 6 as one ``appendonly.aof``.
"""

from __future__ import annotations

import os

from twisted.internet.defer import CancelledError

from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store.client import RedisConnection
from mirrorbits.store.connection import COMMAND_TIMEOUT, close, open_connection, timed

APPEND_FILE = "appendonly.aof"  # --appendfilename: Redis 6's file, Redis 7's names' stem
APPEND_DIR = "appendonlydir"  # Redis 7's default --appenddirname (Redis 6 refuses the option)
POLL_INTERVAL = 0.1  # seconds between two looks at a server still starting
CONNECT_TIMEOUT = 1.0


def has_append_only_file(directory: str) -> bool:
    """Whether a redis-server started with ``--appendonly yes`` in ``directory`` loads data
    from an append-only file there (else it would start empty)."""
    manifest = os.path.join(directory, APPEND_DIR, f"{APPEND_FILE}.manifest")
    if os.path.isfile(manifest):
        return True
    try:
        # Redis 6 creates the file empty when told to start one, fills it when done
        return os.path.getsize(os.path.join(directory, APPEND_FILE)) > 0
    except OSError:
        return False


class NotReady(Exception):
    """The server at the address is not the expected one yet, or still loads its data."""


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
