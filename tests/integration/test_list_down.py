"""``mirrorbits-ctl list -down`` against a real daemon whose health checks reach real HTTP
mirrors on loopback: each mirror that is down shows why (the ``REASON`` column)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from mirrorbits.store import keys
from tests.daemon import DaemonProcess, base_config, record_mirror_files, repo_file
from tests.servers import RedisServer, StaticHTTPServer, free_port

pytestmark = pytest.mark.integration


def test_list_down_shows_why_each_mirror_is_down(tmp_path: Path, redis_server: RedisServer,
                                                  redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    empty = tmp_path / "empty"
    empty.mkdir()
    serving = StaticHTTPServer(repo, host="127.0.0.31")
    missing = StaticHTTPServer(empty, host="127.0.0.32")
    closed_port = free_port("127.0.0.33")  # nothing listens there
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address, CheckInterval="0",
                                              ScanInterval="1000"))
    serving.start()
    missing.start()
    daemon.start()
    try:
        mirrors = (("madrid", serving.url), ("oslo", missing.url),
                   ("warsaw", f"http://127.0.0.33:{closed_port}/"))
        for number, (name, url) in enumerate(mirrors, 1):
            assert daemon.ctl("add", "-http", url, name).returncode == 0
            record_mirror_files(redis_db, number, {"/a.txt": 6}, "2023-06-20 08:30:00 +0000 UTC")
            redis_db.sadd(keys.handled_files(number), "/a.txt")
            assert daemon.ctl("enable", name).returncode == 0
        deadline = time.monotonic() + 30
        while not all(redis_db.hget(keys.mirror(number), "httpUp") == "0"
                      for number in (2, 3)):  # checked (polled here: the CLI starts slowly)
            assert time.monotonic() < deadline, redis_db.hgetall(keys.mirror(2))
            time.sleep(0.05)
        listed = daemon.ctl("list", "-down")
    finally:
        daemon.stop()
        serving.stop()
        missing.stop()
    assert (listed.returncode, listed.stderr) == (0, "")
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["Identifier", "STATE", "SINCE", "REASON"]
    reasons = {row.split()[0]: row.split("\t")[-1] for row in rows}
    assert reasons == {"oslo": "File not found /a.txt (error 404)", "warsaw": "Unreachable"}
