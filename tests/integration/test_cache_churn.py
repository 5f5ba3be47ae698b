"""Every HTTP worker's cache stays true to Redis through a seamless upgrade while files come
and move between mirrors the way scans write them: each change published file by file, then
a mirror's own message (a scan's end, a health check) while the workers are re-reading the
files. Real processes: ``twistd`` with ``Workers: 2``, Redis, ``mirrorbits-ctl upgrade``."""

from __future__ import annotations

import contextlib
import http.client
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.daemon import repo_file
from tests.integration.test_upgrade import Upgradable, read_pid, running, wait_until
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

FILES = [f"/f/{n:02d}.bin" for n in range(24)]
SIZE = 6
MTIME = 1687249800
MOD_TIME = "2023-06-20 08:30:00 +0000 UTC"
MIRRORS = {1: "http://127.0.0.31", 2: "http://127.0.0.32"}
HOLDERS = ({1}, {2}, {1, 2})
MAX_SECONDS = 60.0  # bounds the churn; an upgrade takes 5 to 25 s on a loaded 2-core host


def get(address: tuple[str, int], path: str) -> tuple[int, str | None]:
    """GET ``path`` on a new connection (so that both workers answer): status, Location."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", path, headers={"X-Forwarded-For": "100.96.2.10"})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def scan_like(db: redis.Redis, holders: dict[str, set[int]], then_mirror: int) -> None:
    """What a scan commits, in one MULTI: each file's mirrors and its copies' records, each
    change published; then a mirror's message, arriving while the workers re-read the files."""
    pipe = db.pipeline(transaction=True)
    for path, ids in holders.items():
        for mirror_id in MIRRORS:
            if mirror_id in ids:
                pipe.sadd(f"FILEMIRRORS_{path}", mirror_id)
                pipe.hset(f"FILEINFO_{mirror_id}_{path}",
                          mapping={"size": str(SIZE), "modTime": MOD_TIME})
            else:
                pipe.srem(f"FILEMIRRORS_{path}", mirror_id)
                pipe.delete(f"FILEINFO_{mirror_id}_{path}")
            pipe.publish("_mirrorbits_mirror_file_update", f"{mirror_id} {path}")
    pipe.publish("_mirrorbits_mirror_update", str(then_mirror))
    pipe.execute()


def holders_now(db: redis.Redis, path: str) -> set[str]:
    return {MIRRORS[int(mirror_id)] + path for mirror_id in db.smembers(f"FILEMIRRORS_{path}")}


def wrong_answers(daemon: Upgradable, db: redis.Redis, tries: int = 8) -> list[str]:
    """Each file asked ``tries`` times: every answer not a redirect to a mirror holding it."""
    wrong = []
    for path in FILES:
        expected = holders_now(db, path)
        for _ in range(tries):
            status, location = get(daemon.http, path)
            if status != 302 or location not in expected:
                wrong.append(f"{path}: {status} {location} (held by {sorted(expected)})")
    return wrong


class Churn(threading.Thread):
    """Moves random files between the mirrors (never leaving one on none) and asks for random
    files meanwhile, until stopped (bounded in time); keeps every answer that is not a 302."""

    def __init__(self, daemon: Upgradable, db: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.target = daemon
        self.db = db
        self.failures: list[str] = []
        self.requests = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        rng = random.Random(13)
        deadline = time.monotonic() + MAX_SECONDS
        while not self.stopped.is_set() and time.monotonic() < deadline:
            moved = {path: set(rng.choice(HOLDERS)) for path in rng.sample(FILES, 6)}
            scan_like(self.db, moved, rng.choice(list(MIRRORS)))
            for path in rng.sample(FILES, 4):
                try:
                    status, location = get(self.target.http, path)
                except (OSError, http.client.HTTPException) as err:
                    self.failures.append(f"{path}: {err!r}")
                    continue
                self.requests += 1
                if status != 302:
                    self.failures.append(f"{path}: {status} {location}")
            time.sleep(0.05)


@contextlib.contextmanager
def churning(daemon: Upgradable, db: redis.Redis) -> Iterator[Churn]:
    churn = Churn(daemon, db)
    churn.start()
    try:
        yield churn
    finally:
        churn.stopped.set()
        churn.join(MAX_SECONDS + 5)


def test_workers_follow_scans_through_an_upgrade(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    repo = tmp_path / "repo"
    for path in FILES:
        repo_file(repo, path, b"x" * SIZE, MTIME)
    with running(tmp_path, redis_server, ["--no-monitor"], Workers="2") as daemon:
        wait_until(lambda: daemon.ctl("refresh").returncode == 0, 20, "the repository indexed")
        for mirror_id, url in MIRRORS.items():
            name = f"m{mirror_id}"
            assert daemon.ctl("add", "-http", url + "/", name).returncode == 0
            redis_db.hset(f"MIRROR_{mirror_id}",
                          mapping={"httpUp": "1", "lastSuccessfulSyncPrecision": "1000000000"})
            assert daemon.ctl("enable", name).returncode == 0
        # Published on the origin, on no mirror yet: each worker reads (and keeps) "no mirror".
        wait_until(lambda: get(daemon.http, FILES[0])[0] == 503, 10, "the files indexed")
        for path in FILES:
            for _ in range(4):
                assert get(daemon.http, path)[0] == 503
        # A scan finds them on mirror 1; its end is published while the workers re-read them.
        scan_like(redis_db, {path: {1} for path in FILES}, 1)
        time.sleep(0.5)
        assert wrong_answers(daemon, redis_db) == []

        assert daemon.process is not None
        old = daemon.process.pid
        with churning(daemon, redis_db) as churn:
            assert daemon.ctl("upgrade").returncode == 0
            wait_until(lambda: read_pid(daemon.pidfile) not in (None, old), 45,
                       "the new process")
            daemon.process.wait(15)  # the old one hands over and exits
            time.sleep(1.0)  # the new workers serve under churn
        assert churn.failures == [] and churn.requests > 20
        time.sleep(0.5)
        assert wrong_answers(daemon, redis_db) == []
