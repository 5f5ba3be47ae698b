"""A node restarted on a half-synced copy of the repository, on a real twistd process.

The index is shared by every node: the start scan keeps the files the copy lacks (they are
still redirected), says so once, and ``mirrorbits-ctl refresh`` removes them when the operator
says so (``RepositoryScanMaxRemove``, docs/differences.md "Local repository").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from mirrorbits.store import keys
from tests.daemon import (
    UNANSWERED_RSYNC,
    DaemonProcess,
    add_mirrors_holding,
    base_config,
    redirect,
    repo_file,
)
from tests.servers import RedisServer, StaticHTTPServer

pytestmark = pytest.mark.integration

FALLBACK = "http://fallback.example.org/"
PATHS = [f"/pool/{number:02d}.bin" for number in range(20)]


def answers(daemon: DaemonProcess, path: str, expected: tuple[int, str],
            timeout: float = 10.0) -> bool:
    """Whether ``GET path`` answers *expected* within *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redirect(daemon, path) == expected:
            return True
        time.sleep(0.05)
    return False


def test_a_node_restarted_on_a_half_synced_copy_keeps_the_shared_index(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """Node A scans its copy; node B (a whole copy, ``--no-monitor``) serves from the same
    Redis, sending ``/pool/00.bin`` to a mirror. A restarted on a half-synced copy must not
    make B send it to the fallback (its local record gone) until the operator says so."""
    whole, half = tmp_path / "whole", tmp_path / "half"
    for root in (whole, half):
        for path in PATHS:
            repo_file(root, path, b"x", 1687249800)  # MOD_TIME, as the mirror holds them
    mirror = StaticHTTPServer(whole, host="127.0.0.151")
    raw = f"Fallbacks:\n    - URL: {FALLBACK}\n"
    extra = {"Workers": "1", "ScanInterval": "1000", "CheckInterval": "1"}
    scanning = DaemonProcess(workdir=tmp_path / "a", values=base_config(
        half, redis_server.address, **extra), raw=raw)
    serving = DaemonProcess(workdir=tmp_path / "b", values=base_config(
        whole, redis_server.address, **extra), raw=raw, args=["--no-monitor"])
    mirror.start()
    serving_started = False
    try:
        scanning.start()
        try:
            scanning.wait_log("[source] Indexed 20 files, 0 removed", timeout=30)
            add_mirrors_holding(scanning, redis_db, [("m", mirror.url)],
                                {path: 1 for path in PATHS}, rsync=UNANSWERED_RSYNC)
        finally:
            scanning.stop()
        for path in PATHS[:10]:  # A's copy is synced again from scratch: half of it is there
            (half / path.lstrip("/")).unlink()
        serving.start()
        serving_started = True
        on_mirror = (302, f"{mirror.url}pool/00.bin")  # its port is known once started
        assert answers(serving, "/pool/00.bin", on_mirror)
        scanning.start()
        try:
            scanning.wait_log("[source] Indexed 10 files, ", timeout=30)
            time.sleep(0.5)  # what a removal would have published reaches B meanwhile
            assert redirect(serving, "/pool/00.bin") == on_mirror
            assert len(redis_db.smembers(keys.FILES)) == 20
            scanning.wait_log(
                "[source] Kept 10 indexed files the repository lacks (more than "
                "RepositoryScanMaxRemove (10%) of the 20 indexed files: not mounted or not "
                "synced whole?); looked for again at the next scan, 'mirrorbits-ctl refresh' "
                "removes them")

            refreshed = scanning.ctl("refresh")  # the operator's word
            assert refreshed.returncode == 0, refreshed.stderr
            scanning.wait_log("[source] Indexed 10 files, 10 removed")
            assert len(redis_db.smembers(keys.FILES)) == 10
            assert answers(serving, "/pool/00.bin", (302, FALLBACK + "pool/00.bin"))
            log = scanning.log()
        finally:
            scanning.stop()
    finally:
        if serving_started:
            serving.stop()
        mirror.stop()
    assert log.count("[source] Kept") == 1
    assert "Traceback" not in log + serving.log()
