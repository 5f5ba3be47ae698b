"""``MirmonExportFile``: a real daemon (twistd) keeps the Mirmon list in a file while
``mirrorbits-ctl`` adds, edits, disables and removes mirrors; the file always equals
``mirrorbits-ctl export mirmon`` and is replaced whole (never seen half written)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.daemon import DaemonProcess, base_config, repo_file
from tests.servers import RedisServer

pytestmark = pytest.mark.integration


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``predicate()`` held (fails after ``timeout``)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
    return time.monotonic() - started


def read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def test_the_file_follows_the_mirrors(tmp_path: Path, redis_server: RedisServer,
                                      redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    export_dir = tmp_path / "mirmon"
    export_dir.mkdir()
    export = export_dir / "mirrors.list"
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address,
                                              MirmonExportFile=str(export)))
    daemon.start()
    seen: list[str] = []
    stop_reading = threading.Event()

    def reader() -> None:  # what Mirmon would read, every millisecond (a busy loop would
        # take a whole core from the daemon and the CLI for the length of the test)
        while not stop_reading.wait(0.001):
            text = read(export)
            if text is not None and (not seen or seen[-1] != text):
                seen.append(text)

    reading = threading.Thread(target=reader)
    reading.start()
    delays = []
    try:
        delays.append(wait_for(lambda: read(export) == ""))  # no mirror yet: an empty list

        def follows() -> float:
            exported = daemon.ctl("export", "mirmon")
            assert exported.returncode == 0, exported.stderr
            return wait_for(lambda: read(export) == exported.stdout)

        assert daemon.ctl("add", "-http", "http://127.0.0.31/", "-rsync",
                          "rsync://127.0.0.31/pub/", "-admin-email", "ops@madrid.example",
                          "madrid").returncode == 0
        delays.append(follows())
        assert daemon.ctl("add", "-http", "127.0.0.32/", "-ftp", "ftp://127.0.0.32/pub/",
                          "oslo").returncode == 0
        delays.append(follows())
        edited = daemon.ctl("edit", "oslo", env={"EDITOR": "sed -i s/^CountryCodes:.*/"
                                                           "'CountryCodes: NO'/"})
        assert edited.returncode == 0, edited.stderr
        delays.append(follows())
        assert "NO\thttps://127.0.0.32/" in read(export)
        assert daemon.ctl("enable", "madrid").returncode == 0
        assert daemon.ctl("disable", "madrid").returncode == 0
        delays.append(follows())
        assert daemon.ctl("remove", "-f", "oslo").returncode == 0
        delays.append(follows())
        final = read(export)
        log = daemon.log()
    finally:
        stop_reading.set()
        reading.join()
        daemon.stop()
    assert final is not None
    assert final == ("ES\trsync://127.0.0.31/pub/\tops@madrid.example\n"
                     "ES\thttp://127.0.0.31/\tops@madrid.example\n")
    assert "127.0.0.32" not in final
    assert os.stat(export).st_mode & 0o777 == 0o644
    assert [name for name in os.listdir(export_dir)] == ["mirrors.list"]  # no temporary left
    # every version a reader saw was a whole list: each line has its three columns
    for text in seen:
        assert all(line.count("\t") >= 2 for line in text.splitlines()), text
    assert max(delays) < 5
    assert "Traceback" not in log
    print("file followed within", ", ".join(f"{delay:.2f}" for delay in delays), "s")


def test_an_unwritable_directory_is_said_once_and_the_daemon_serves(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    missing = tmp_path / "nowhere" / "mirrors.list"
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address,
                                              MirmonExportFile=str(missing)))
    daemon.start()
    try:
        daemon.wait_log("its directory does not exist: the file is not written until it can be")
        assert daemon.ctl("add", "-http", "http://127.0.0.31/", "madrid").returncode == 0
        time.sleep(2)
        (tmp_path / "nowhere").mkdir()
        assert daemon.ctl("edit", "madrid", env={
            "EDITOR": "sed -i s/^CountryCodes:.*/'CountryCodes: PT'/"}).returncode == 0
        wait_for(lambda: read(missing) == "PT\thttp://127.0.0.31/\t\n")
        # said once the file is in place: the log line may reach the file a moment later
        daemon.wait_log(f"MirmonExportFile '{missing}' updated again")
        log = daemon.log()
    finally:
        daemon.stop()
    # said once, by the configuration check at start: not again at each failed write
    assert log.count("its directory does not exist: the file is not written until it can be") == 1
    assert "not updated" not in log
    assert "Traceback" not in log
