"""A Redis outage right after a message made the cache forget mirror records: the forgotten
mirrors still serve (from the records held before the message), as do the others (a real
daemon, a real redis-server stopped)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from attrs import define

from mirrorbits.store import keys
from tests.daemon import DaemonProcess, add_mirrors_holding, base_config, redirect, repo_file
from tests.servers import RedisServer, http_tree

pytestmark = pytest.mark.integration


@define
class Mirrored:
    server: RedisServer
    db: redis.Redis
    daemon: DaemonProcess
    north: str  # base URLs of the two mirrors holding /a.txt
    south: str


@contextmanager
def a_txt_on_north_and_south(tmp_path: Path, hosts: tuple[str, str]) -> Iterator[Mirrored]:
    """A daemon (``Workers: 1``) on its own redis-server, then mirrors north and south (HTTP
    on ``hosts``) added holding ``/a.txt``, their first checks, scans and messages done;
    everything stopped after."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    db = server.client()
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    for name in ("north", "south"):
        repo_file(tmp_path / name, "/a.txt", b"hello\n", 1687249800)
    daemon: DaemonProcess | None = None
    try:
        with http_tree(tmp_path / "north", hosts[0]) as north, \
                http_tree(tmp_path / "south", hosts[1]) as south:
            values = base_config(repo, server.address, Workers="1", ScanInterval="1000")
            daemon = DaemonProcess(workdir=tmp_path / "run", values=values)
            daemon.start()
            daemon.wait_log("Indexed 1 files", timeout=30)
            add_mirrors_holding(daemon, db, [("north", north), ("south", south)],
                                {"/a.txt": 6})
            for name in ("north", "south"):  # their first checks and scans are done
                daemon.wait_log(f"[{name}] Indexed 1 files", timeout=30)
            yield Mirrored(server, db, daemon, north, south)
    finally:
        if daemon is not None:
            daemon.stop()
        server.stop()
        db.close()


@pytest.mark.parametrize("forgotten", [("1",), ("1", "2")], ids=["north", "every-mirror"])
def test_mirrors_forgotten_just_before_an_outage_still_serve(
        tmp_path: Path, forgotten: tuple[str, ...]) -> None:
    with a_txt_on_north_and_south(tmp_path, ("127.0.0.85", "127.0.0.86")) as setup:
        daemon, north, south = setup.daemon, setup.north, setup.south
        time.sleep(0.5)  # and their messages read
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while seen != {north + "a.txt", south + "a.txt"}:
            assert time.monotonic() < deadline, seen
            seen.add(redirect(daemon, "/a.txt")[1])
        # north (and south) changed (a health check, an edit): the caches forget them
        for mirror_id in forgotten:
            setup.db.publish(keys.CHANNEL_MIRROR_UPDATE, mirror_id)
        time.sleep(0.5)
        setup.server.stop()  # ... and Redis is gone before a request read it again
        answers = [redirect(daemon, "/a.txt") for _ in range(2)]
        # once the daemon knows it is down, a read fails at once (not a lost connection)
        daemon.wait_log("Database is down", timeout=15)
        answers += [redirect(daemon, "/a.txt") for _ in range(2)]
        log = daemon.log()
    # Before, the forgotten mirrors were left out: with every mirror of the file forgotten,
    # each download got a 503 (after a 2 s wait) for the whole outage.
    assert [code for code, _ in answers] == [302] * 4, (answers, log)
    assert {url for _, url in answers} <= {north + "a.txt", south + "a.txt"}
    assert "Traceback" not in log


def test_a_file_first_mirrored_after_the_fill_and_never_asked_still_serves_in_an_outage(
        tmp_path: Path) -> None:
    """The mirrors of a file were added, and its copies scanned, after the daemon filled its
    cache (which leaves out a file no mirror holds), and no download asked for it before
    Redis was stopped. Each download is a 302 to one of them: the cache read the mirrors and
    the file as their messages came. Before, it read them only when asked: each download of
    the file got a 503 for the whole outage (an HTTP worker that had served none of it, in
    ``test_held_down.py``'s replica case, when a replica was not read)."""
    with a_txt_on_north_and_south(tmp_path, ("127.0.0.87", "127.0.0.88")) as setup:
        daemon, north, south = setup.daemon, setup.north, setup.south
        time.sleep(1)  # and their messages read
        setup.server.stop()
        daemon.wait_log("Database is down", timeout=15)
        answers = [redirect(daemon, "/a.txt") for _ in range(4)]
        log = daemon.log()
    assert [code for code, _ in answers] == [302] * 4, (answers, log)
    assert {url for _, url in answers} <= {north + "a.txt", south + "a.txt"}
    assert "Traceback" not in log
