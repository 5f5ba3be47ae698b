"""``twistd --rundir DIR mirrorbits --config FILE``: twistd moves to DIR after the
configuration was read; the file, and every relative path it names, are still taken from
where the daemon was started, at start and at every reload."""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from mirrorbits.daemon import GEO_CHECK_INTERVAL
from tests.certificates import Authority
from tests.daemon import (
    BIN,
    FIXTURES,
    DaemonProcess,
    base_config,
    put_a_txt_on_a_mirror,
    repo_file,
)
from tests.servers import RedisServer, env_without_proxies

pytestmark = pytest.mark.integration


def start_in_rundir(daemon: DaemonProcess, rundir: Path, wait_for: str) -> None:
    """Start ``daemon`` from its work directory with a relative ``--config`` and twistd's
    ``--rundir rundir``; return once its log says ``wait_for``."""
    daemon.workdir.mkdir(parents=True, exist_ok=True)
    daemon.write_config()
    rundir.mkdir()
    daemon.process = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", "--logfile", str(daemon.log_path),
         "--rundir", str(rundir), "mirrorbits", "--config", daemon.config_path.name],
        cwd=daemon.workdir, env=env_without_proxies(), stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while wait_for not in daemon.log():
        assert time.monotonic() < deadline and daemon.process.poll() is None, daemon.log()
        time.sleep(0.05)


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
    try:
        start_in_rundir(daemon, tmp_path / "rundir", "Indexed 1 files")
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
    try:
        start_in_rundir(daemon, tmp_path / "rundir", "Indexed 1 files")
        put_a_txt_on_a_mirror(daemon, redis_db)
        statuses = [get(daemon, "/a.txt")[0] for _ in range(2)]
        reload = daemon.ctl("reload")
        statuses.append(get(daemon, "/a.txt")[0])
        stats = get(daemon, "/?mirrorstats")
    finally:
        daemon.stop()
    log = daemon.log()
    assert statuses == [302] * 3, log
    # It was: "Cannot open the download log logs/downloads.log: No such file or directory"
    # (looked for in the rundir), the shipped mirrorstats page, and at each reload "LogDir
    # 'logs' does not exist", "Templates 'templates' does not exist".
    assert (reload.returncode, reload.stderr) == (0, ""), reload.stderr
    assert "Cannot open the download log" not in log, log
    downloads = (run / "logs" / "downloads.log").read_text()
    assert downloads.count("/a.txt") == 3, downloads
    assert stats[0] == 200 and "<p>custom madrid</p>" in stats[1], stats


def test_relative_geoip_and_control_tls_files_are_taken_from_the_start_directory(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """``GeoipDatabasePath`` and the ``RPCTLS*`` files relative: read at start from where the
    daemon was started, and so are they later (the GeoIP watch every 5 s, the certificates at
    each reload)."""
    run = tmp_path / "run"
    repo_file(run / "repo", "/a.txt", b"hello\n", 1687249800)
    shutil.copytree(FIXTURES / "geo", run / "geo")
    authority = Authority("ours", run / "pki")
    cert, key = authority.issue("daemon", server=True, hosts=("127.0.0.1",))
    values = base_config(run / "repo", redis_server.address, Workers="1",
                         GeoipDatabasePath="geo/",
                         RPCTLSCertificate=str(cert.relative_to(run)),
                         RPCTLSKey=str(key.relative_to(run)),
                         RPCTLSClientCA=str(authority.ca_path.relative_to(run)))
    daemon = DaemonProcess(workdir=run, values=values, args=["--no-monitor"])
    try:
        start_in_rundir(daemon, tmp_path / "rundir", "HTTP starting")
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_log("Control TLS", timeout=20)
        time.sleep(GEO_CHECK_INTERVAL + 1)  # the GeoIP watch looked at the files
    finally:
        daemon.stop()
    log = daemon.log()
    # It was: "Control TLS not reloaded, the current certificate stays: RPCTLSCertificate
    # pki/daemon.pem: cannot read it", and every 5 s "Can't load the GeoLite2-City.mmdb
    # database (geo/GeoLite2-City.mmdb): No such file or directory".
    assert "Control TLS: certificate, key and client CA read again" in log, log
    assert "Control TLS not reloaded" not in log and "Can't load" not in log, log


def get(daemon: DaemonProcess, target: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(*daemon.http, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()
