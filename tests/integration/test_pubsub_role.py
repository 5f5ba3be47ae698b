"""The pub/sub connection reads a replica's whole ``ROLE`` answer (a real redis-server made
a replica): the reason it does not subscribe there names the role, not a port."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from mirrorbits.store.connection import check_master, close, open_connection
from mirrorbits.store.errors import StoreError
from mirrorbits.store.pubsub import _Subscriber
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


@pytest_twisted.ensureDeferred
async def test_a_replica_is_refused_by_its_role(tmp_path: Path) -> None:
    server = RedisServer(workdir=tmp_path / "redis", port=free_port())
    server.start()
    db = server.client()
    try:
        db.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        conn = await open_connection(reactor, server.host, server.port,
                                     password=server.password or "", db=None,
                                     protocol=_Subscriber)
        try:
            role = await conn.role()
            assert role[0] == "slave" and len(role) == 5, role
            with pytest.raises(StoreError, match=r"not a master \(role: slave\)"):
                await check_master(reactor, conn)
        finally:
            close(conn, abort=True)
    finally:
        db.close()
        server.stop()
