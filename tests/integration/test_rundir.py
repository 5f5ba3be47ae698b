"""``twistd --rundir DIR mirrorbits --config FILE`` with a relative FILE: twistd moves to DIR
after the configuration was read, and a reload must still find the file."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.daemon import BIN, DaemonProcess, base_config, repo_file
from tests.servers import RedisServer, env_without_proxies

pytestmark = pytest.mark.integration


def test_a_relative_config_file_is_reloaded_after_twistd_moved_to_its_rundir(
        tmp_path: Path, redis_server: RedisServer) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address, Workers="1"))
    daemon.workdir.mkdir(parents=True)
    daemon.write_config()
    rundir = tmp_path / "rundir"
    rundir.mkdir()
    daemon.process = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", "--logfile", str(daemon.log_path),
         "--rundir", str(rundir), "mirrorbits", "--config", daemon.config_path.name],
        cwd=daemon.workdir, env=env_without_proxies(), stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Control starting on" not in daemon.log():
            assert time.monotonic() < deadline and daemon.process.poll() is None, daemon.log()
            time.sleep(0.05)
        reload = daemon.ctl("reload")
    finally:
        daemon.stop()
    # It was: "Configuration could not be read from mirrorbits.conf: No such file or
    # directory", every reload refused for the daemon's whole life.
    assert (reload.returncode, reload.stderr) == (0, ""), reload.stderr
