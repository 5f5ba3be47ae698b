"""A mirror whose scan failed is tried again long before ``ScanInterval`` (spec §20 item 24):
a real daemon, redis-server, and an ``rsync --daemon`` that is down at first."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.daemon import DaemonProcess, base_config
from tests.integration.test_mirror_scan import own_redis, wait_until
from tests.integration.test_rsync_scan import FIXTURE, write_tree
from tests.servers import RedisServer, RsyncServer, free_port

pytestmark = pytest.mark.integration
__all__ = ["own_redis"]  # a fixture imported from test_mirror_scan


@pytest.fixture
def late_rsyncd(tmp_path: Path) -> Iterator[RsyncServer]:
    """An rsync daemon on a port chosen now, not started: the test starts it."""
    tree = tmp_path / "modules" / "partial"
    write_tree(tree, FIXTURE["tree"][:2])
    server = RsyncServer(tmp_path / "rsyncd", {"partial": tree}, port=free_port())
    yield server
    server.stop()


def test_a_mirror_down_at_its_first_scan_is_indexed_a_minute_later(
    tmp_path: Path, own_redis: RedisServer, late_rsyncd: RsyncServer
) -> None:
    db = redis.Redis(host=own_redis.host, port=own_redis.port, decode_responses=True)
    repo = tmp_path / "repo"
    write_tree(repo, FIXTURE["tree"][:3])
    values = base_config(repo, own_redis.address, ScanInterval="30")
    process = DaemonProcess(workdir=tmp_path / "run", values=values)
    process.start()
    try:
        wait_until(lambda: db.exists("FILES"))
        assert process.ctl("add", "-rsync", late_rsyncd.url("partial"), "-http",
                           "http://127.0.0.2/", "m1").returncode == 0
        assert process.ctl("enable", "m1").returncode == 0
        process.wait_log("#error] [m1] rsync: ", timeout=20)  # nothing listens there
        failed = time.monotonic()
        assert not db.exists("MIRRORFILES_1")

        late_rsyncd.start()
        wait_until(lambda: db.scard("HANDLEDFILES_1") == 2, timeout=90)
        waited = time.monotonic() - failed
        assert 50 < waited < 80, waited  # ScanInterval is 30 min
        assert db.smembers("MIRRORFILES_1") == {f["path"] for f in FIXTURE["tree"][:2]}
        log = process.log()
        # the error said once (then rsync's own lines), the next attempt once; the success
        assert len(re.findall(r"#error\] \[m1\] rsync: ", log)) == 1, log
        assert log.count("retried in") == 1, log
        assert "[m1] Scan failed; retried in 1 min" in log
        assert "[m1] Indexed 2 files" in log
        assert "Traceback" not in log
    finally:
        process.stop()
        db.close()
