"""A mirror that silently deletes (or truncates) a popular file stops receiving users for it
within seconds (mirrorbits/health/verify.py, docs/freshness.md): a real daemon, a real
redis-server, two ``python -m http.server`` mirrors on loopback, no scan and no health check
to help."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from mirrorbits.store import keys
from tests.daemon import (
    redirect,
    wait_until_not_a_candidate,
)
from tests.integration.lost_support import lossy_and_full
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

FILES = ("/popular.bin", "/other.bin", "/rare.bin")


def test_a_silently_deleted_popular_file_is_no_longer_sent_to_that_mirror(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    # No scan (ScanInterval 1000 minutes, an rsync URL nobody answers) and one health check
    # per mirror, at its start: only the verification can find the deletion.
    with lossy_and_full(tmp_path, redis_server, redis_db, FILES, ("127.0.0.71", "127.0.0.72"),
                        CheckInterval="60", ScanInterval="1000",
                        VerifyInterval="1") as (daemon, lossy, full):
        lossy_root, full_root = lossy.root, full.root
        # downloads make /popular.bin the most requested file (counted into today's stats)
        before = {redirect(daemon, "/popular.bin") for _ in range(40)}
        assert (302, lossy.url + "popular.bin") in before
        redirect(daemon, "/other.bin")
        time.sleep(3)  # the stats flushed and read by the verification
        deleted = time.monotonic()
        (lossy_root / "popular.bin").unlink()
        daemon.wait_log("lossy: /popular.bin is missing there (404)", timeout=30)
        found = time.monotonic() - deleted
        # a truncated copy is a loss too: that file only, on that mirror only
        (full_root / "other.bin").write_bytes(b"hel")
        daemon.wait_log("full: /other.bin differs there (3 bytes instead of 6)", timeout=30)
        wait_until_not_a_candidate(daemon, "/popular.bin", "lossy")
        wait_until_not_a_candidate(daemon, "/other.bin", "full")
        popular = {redirect(daemon, "/popular.bin") for _ in range(30)}
        other = {redirect(daemon, "/other.bin") for _ in range(30)}
        log = daemon.log()
    print(f"\ndeletion -> dropped on that mirror: {found:.1f} s")
    assert found < 10
    assert popular == {(302, full.url + "popular.bin")}
    assert other == {(302, lossy.url + "other.bin")}  # the mirror still gets other files
    assert redis_db.hget(keys.mirror(1), "httpUp") == "1"
    assert redis_db.hget(keys.mirror(2), "httpUp") == "1"
    assert redis_db.smembers(keys.file_mirrors("/other.bin")) == {"1"}
    assert "Traceback" not in log


def test_after_a_lost_file_that_mirror_is_verified_every_second_for_a_while(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """Files go in batches: after the first loss found, the mirror's other lost files are
    found within seconds, though its turns are 10 s apart and no rescan can help."""
    with lossy_and_full(tmp_path, redis_server, redis_db, FILES, ("127.0.0.73", "127.0.0.74"),
                        CheckInterval="60", ScanInterval="1000",
                        VerifyInterval="10") as (daemon, lossy, _full):
        for path, count in (("/popular.bin", 40), ("/other.bin", 20), ("/rare.bin", 10)):
            for _ in range(count):
                redirect(daemon, path)
        time.sleep(3)  # the stats flushed and read by the verification
        for path in FILES:  # a batch: every file of the mirror at once
            (lossy.root / path.lstrip("/")).unlink()
        found = []
        for path in FILES:
            daemon.wait_log(f"lossy: {path} is missing there (404)", timeout=40)
            found.append(time.monotonic())
        log = daemon.log()
    after_first = [round(when - found[0], 1) for when in found[1:]]
    print(f"\nthe other lost files found {after_first} s after the first")
    assert max(after_first) < 6  # without the boost: one every 10 s at best
    assert redis_db.smembers(keys.file_mirrors("/rare.bin")) == {"2"}
    assert "Traceback" not in log
