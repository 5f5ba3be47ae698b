"""``RsyncOptions``: extra options of the listing rsync, per mirror or for all (``*``), against
a real daemon (twistd), ``mirrorbits-ctl``, redis-server and ``rsync --daemon``: a symbolic
link that leaves the module is listed as the file it points to only with
``--copy-unsafe-links``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mirrorbits.scan.rsync import rsync_command
from mirrorbits.store import keys
from tests.daemon import BIN, DaemonProcess, base_config, repo_file
from tests.servers import RedisServer, rsync_daemon

pytestmark = pytest.mark.integration

MTIME = 1687249800


@pytest.fixture
def module_with_unsafe_link(tmp_path: Path) -> Iterator[str]:
    """An rsync daemon whose module ``pub`` holds ``/pool/a.txt``, ``/pool/safe.txt`` (a link
    to it) and ``/pool/big.iso``, a link to a file outside the module; yields its URL."""
    binary = shutil.which("rsync")
    if binary is None:
        pytest.skip("rsync is not installed")
    module = tmp_path / "modules" / "pub"
    repo_file(module, "/pool/a.txt", b"hello\n", MTIME)
    repo_file(tmp_path / "outside", "/big.iso", b"iso image\n", MTIME)
    (module / "pool" / "big.iso").symlink_to("../../../outside/big.iso")
    (module / "pool" / "safe.txt").symlink_to("a.txt")
    with rsync_daemon(tmp_path, {"pub": module}) as server:
        yield server.url("pub")


def test_copy_unsafe_links_lists_what_a_link_outside_the_module_points_to(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis,
        module_with_unsafe_link: str) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/pool/a.txt", b"hello\n", MTIME)
    repo_file(repo, "/pool/big.iso", b"iso image\n", MTIME)
    raw = 'RsyncOptions:\n  "*": [--copy-unsafe-links]\n  plain: []\n'
    daemon = DaemonProcess(workdir=tmp_path / "run", raw=raw, args=["--no-monitor"],
                           values=base_config(repo, redis_server.address))
    daemon.start()
    try:
        assert daemon.ctl("refresh").returncode == 0
        for name, host in (("plain", "127.0.0.31"), ("follow", "127.0.0.32")):
            added = daemon.ctl("add", "-http", f"http://{host}/", "-rsync",
                               module_with_unsafe_link, name)
            assert added.returncode == 0, added.stderr
        plain = daemon.ctl("scan", "plain")
        follow = daemon.ctl("scan", "follow")
        log = daemon.log()
    finally:
        daemon.stop()
    assert (plain.stdout, plain.returncode) == (
        "Scanning plain... 1 files indexed, 1 known and 0 removed\n", 0)
    assert (follow.stdout, follow.returncode) == (
        "Scanning follow... 2 files indexed, 2 known and 0 removed\n", 0)
    assert redis_db.smembers(keys.mirror_files(1)) == {"/pool/a.txt"}
    assert redis_db.smembers(keys.mirror_files(2)) == {"/pool/a.txt", "/pool/big.iso"}
    assert redis_db.hget(keys.file_info(2, "/pool/big.iso"), "size") == "10"
    assert "[follow] Requesting file list via rsync --copy-unsafe-links..." in log
    assert "[plain] Requesting file list via rsync..." in log


def test_options_come_after_the_usual_ones_so_a_timeout_of_theirs_wins() -> None:
    command = rsync_command("rsync://u:pw@127.0.0.1:9/mod/", ("--timeout=120", "-L"))
    assert command.args == ("-r", "--no-motd", "--exclude=.~tmp~/", "--timeout=30",
                            "--contimeout=30", "--timeout=120", "-L", "rsync://127.0.0.1:9/mod/")
    assert rsync_command("rsyncs://127.0.0.1/mod/", ("-4",)).args[-2:] == (
        "-4", "rsync://127.0.0.1/mod/")


def test_an_option_that_could_run_a_command_is_refused(tmp_path: Path,
                                                       redis_server: RedisServer) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(repo, redis_server.address))
    daemon.raw = 'RsyncOptions: {"*": ["--rsh=sh -c touch"]}\n'
    daemon.workdir.mkdir(parents=True)
    daemon.write_config()
    started = subprocess.run(
        [str(BIN / "twistd"), "-n", "--pidfile=", "mirrorbits",
         "--config", str(daemon.config_path)], capture_output=True, text=True, timeout=60)
    assert started.returncode != 0
    assert ("RsyncOptions.*: '--rsh=sh -c touch' is refused: only options that change the "
            "listing are allowed") in started.stdout + started.stderr
    assert "Traceback" not in started.stdout + started.stderr
