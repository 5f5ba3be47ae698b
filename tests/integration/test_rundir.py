"""``twistd --rundir DIR mirrorbits --config FILE`` with a relative FILE: twistd moves to DIR
after the configuration was read, and a reload must still find the file."""

from __future__ import annotations

import http.client
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.daemon import BIN, DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.servers import RedisServer, env_without_proxies

pytestmark = pytest.mark.integration


def test_a_relative_config_file_is_reloaded_after_twistd_moved_to_its_rundir(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """(``redis_db``: the session's Redis emptied first; another test's data there made the
    database check refuse to start.)"""
    run = tmp_path / "run"
    repo_file(run / "repo", "/a.txt", b"hello\n", 1687249800)
    values = base_config(run / "repo", redis_server.address, Workers="1")
    # relative, as --config: from where the daemon was started, at start and on reload
    values["Repository"] = "repo"
    daemon = DaemonProcess(workdir=run, values=values)
    daemon.workdir.mkdir(parents=True, exist_ok=True)
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
        while "Indexed 1 files" not in daemon.log():
            assert time.monotonic() < deadline and daemon.process.poll() is None, daemon.log()
            time.sleep(0.05)
        reload = daemon.ctl("reload")
        refresh = daemon.ctl("refresh")
        log = daemon.log()
    finally:
        daemon.stop()
    # It was: "Configuration could not be read from mirrorbits.conf: No such file or
    # directory", every reload refused for the daemon's whole life; then the reloaded
    # Repository was taken from the --rundir ("... does not exist").
    assert (reload.returncode, reload.stderr) == (0, ""), reload.stderr
    assert refresh.returncode == 0, refresh.stderr
    assert log.count("Indexed 1 files, 0 removed") == 2, log


def test_relative_log_dir_and_templates_are_taken_from_the_start_directory(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """``LogDir`` and ``Templates`` relative, as ``Repository``: from where the daemon was
    started, not from the --rundir twistd moves to (as HTTP worker processes, started there,
    already took them)."""
    run = tmp_path / "run"
    repo_file(run / "repo", "/a.txt", b"hello\n", 1687249800)
    (run / "logs").mkdir()
    (run / "templates").mkdir()
    (run / "templates" / "mirrorstats.xhtml").write_text(
        '<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1"><body>'
        '<p t:render="rows">custom <t:slot name="name" /></p></body></html>')
    values = base_config(run / "repo", redis_server.address, Workers="1",
                         Repository="repo", LogDir="logs", Templates="templates")
    daemon = DaemonProcess(workdir=run, values=values)
    daemon.workdir.mkdir(parents=True, exist_ok=True)
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
        while "Indexed 1 files" not in daemon.log():
            assert time.monotonic() < deadline and daemon.process.poll() is None, daemon.log()
            time.sleep(0.05)
        put_a_txt_on_a_mirror(daemon, redis_db)
        statuses = [get(daemon, "/a.txt")[0] for _ in range(2)]
        reload = daemon.ctl("reload")
        statuses.append(get(daemon, "/a.txt")[0])
        stats = get(daemon, "/?mirrorstats")
    finally:
        daemon.stop()
    log = daemon.log()
    assert statuses == [302] * 3, log
    assert (reload.returncode, reload.stderr) == (0, ""), reload.stderr
    # It was: "Cannot open the download log logs/downloads.log: No such file or directory"
    # (looked for in the rundir), and the shipped mirrorstats page.
    assert "Cannot open the download log" not in log, log
    downloads = (run / "logs" / "downloads.log").read_text()
    assert downloads.count("/a.txt") == 3, downloads
    assert stats[0] == 200 and "<p>custom madrid</p>" in stats[1], stats


def get(daemon: DaemonProcess, target: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(*daemon.http, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()
