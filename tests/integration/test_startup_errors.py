"""Bad addresses and sockets that cannot be listened on: one clear line, never a traceback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mirrorbits.confighold import RELOAD_REFUSED
from mirrorbits.daemon import CONTROL_RELOAD
from tests.daemon import BIN, DaemonProcess, base_config, render_config, run_twistd
from tests.integration.conftest import request
from tests.servers import RedisServer

BAD_VALUES = ["127.0.0.1:99999", "nonsense", "127.0.0.1:http", "::1:8080", "[::1:8080",
              "999.0.0.1:8080", "my host:8080"]


def start_with(tmp_path: Path, *prefix: str, **values: str) -> tuple[int, str, str]:
    """Run ``twistd -n mirrorbits`` on a config with ``values``: exit code, stderr, log."""
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    config = tmp_path / "mirrorbits.conf"
    config.write_text(render_config(base_config(repo, "127.0.0.1:1", **values)))
    log = tmp_path / "twistd.log"
    command = ["-n", "--pidfile=", "--logfile", str(log), "mirrorbits", "--config", str(config),
               "--no-monitor"]
    if prefix:
        result = _run_prefixed(list(prefix), command, tmp_path)
    else:
        result = run_twistd(*command, cwd=tmp_path)
    return result.returncode, result.stderr + result.stdout, (
        log.read_text() if log.exists() else "")


def _run_prefixed(prefix: list[str], command: list[str],
                  cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, str(BIN / "twistd"), *command], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def assert_one_line(code: int, output: str, log: str, *expected: str) -> None:
    assert code != 0
    assert "Traceback" not in output + log, output + log
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize("key", ["ListenAddress", "RPCListenAddress", "RedisAddress"])
@pytest.mark.parametrize("value", BAD_VALUES)
def test_a_bad_address_is_one_line_naming_key_and_value(
        tmp_path: Path, key: str, value: str) -> None:
    code, output, log = start_with(tmp_path, **{key: f'"{value}"'})
    assert_one_line(code, output, log, f"mirrorbits: {key} '{value}' is invalid: ")


def test_a_bad_sentinel_address_is_one_line(tmp_path: Path) -> None:
    code, output, log = start_with(
        tmp_path, RedisSentinelMasterName="mymaster",
        RedisSentinels='[{Host: "10.0.0.1:26379"}, {Host: "nonsense"}]')
    assert_one_line(code, output, log, "RedisSentinels.Host 'nonsense' is invalid")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("key", ["ListenAddress", "RPCListenAddress", "MetricsListenAddress"])
def test_a_port_in_use_is_one_line(tmp_path: Path, taken_port: int, key: str) -> None:
    code, output, log = start_with(tmp_path, **{key: f"127.0.0.1:{taken_port}"})
    assert_one_line(code, output, log,
                    f"{key}: cannot listen on 127.0.0.1:{taken_port}: Address already in use")


@pytest.mark.parametrize("key", ["ListenAddress", "RPCListenAddress"])
def test_a_unix_socket_in_a_missing_directory_is_one_line(tmp_path: Path, key: str) -> None:
    path = tmp_path / "missing" / "s.sock"
    code, output, log = start_with(tmp_path, **{key: f"unix:{path}"})
    assert_one_line(code, output, log,
                    f"{key}: cannot listen on unix:{path}: No such file or directory")


def test_an_unresolvable_host_is_one_line(tmp_path: Path) -> None:
    code, output, log = start_with(tmp_path, ListenAddress="no-such-host.invalid:8080")
    assert_one_line(code, output, log, "ListenAddress: cannot listen on no-such-host.invalid:8080:",
                    "does not resolve")


def _without_privileged_ports() -> list[str] | None:
    """A command prefix under which binding port 81 is refused, if there is one."""
    if os.geteuid() != 0:
        start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        if start.exists() and int(start.read_text()) <= 81:
            return None
        return []
    setpriv = shutil.which("setpriv")
    return None if setpriv is None else [setpriv, "--bounding-set=-net_bind_service"]


def test_permission_denied_is_one_line(tmp_path: Path) -> None:
    prefix = _without_privileged_ports()
    if prefix is None:
        pytest.skip("binding port 81 cannot be made to fail here")
    code, output, log = start_with(tmp_path, *prefix, ListenAddress="127.0.0.1:81")
    assert_one_line(code, output, log,
                    "ListenAddress: cannot listen on 127.0.0.1:81: Permission denied")


def test_a_bad_address_on_reload_keeps_the_running_config(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address), args=["--no-monitor"])
    daemon.start()
    try:
        good = daemon.config_path.read_text()
        for key, value in (("ListenAddress", "127.0.0.1:99999"), ("RedisAddress", "nonsense")):
            daemon.config_path.write_text(good.replace(daemon.values[key], value))
            message = f"{key} '{value}' is invalid"
            daemon.signal(signal.SIGHUP)
            daemon.wait_log(message)
            failed = daemon.ctl("reload")
            assert failed.returncode != 0 and message in failed.stderr, failed.stderr
            assert daemon.ctl("list").returncode == 0  # still serving, on the old config
        daemon.config_path.write_text(good.replace("RPCPassword: test-rpc", "RPCPassword: new"))
        assert daemon.ctl("reload").returncode == 0
        assert daemon.ctl("list", password="new").returncode == 0
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        daemon.stop()


# --- values that make no sense, typos ------------------------------------------------------

BAD_SETTINGS = [
    ({"ScanInterval": "-5"}, "ScanInterval must be a number of minutes >= 0, not -5"),
    ({"CheckInterval": "-1"}, "CheckInterval must be a number of minutes >= 0, not -1"),
    ({"ConcurrentSync": "0"}, "ConcurrentSync must be >= 1 (mirrors scanned at the same time), "
                              "not 0"),
    ({"WeightDistributionRange": "0"}, "WeightDistributionRange must be > 0, not 0"),
    ({"OutputMode": "JSON"}, "Config: outputMode can only be set to 'auto', 'json' or "
                             "'redirect', not 'JSON'"),
    ({"MaxLinkHeaders": "-1"}, "MaxLinkHeaders must be >= 0, not -1"),
    ({"ScanInterval": "[1, 2]"}, "ScanInterval must be an integer, not a list"),
    ({"Fallbacks": "[{URL: 'ftp://fb.example.org/'}]"},
     "Fallbacks.URL 'ftp://fb.example.org/' is invalid: it must start with http:// or https://, "
     "or have no scheme (then it serves both)"),
    ({"Fallbacks": "[{URL: fb.example.org, ContinentCode: Europe}]"},
     "Fallbacks.ContinentCode 'Europe' is invalid: it must be one of AF, AN, AS, EU, NA, OC, SA"),
]


def line_of(config: Path, key: str) -> int:
    """The line of *config* that sets the top-level *key*."""
    return [line.split(":")[0] for line in config.read_text().splitlines()].index(key) + 1


@pytest.mark.parametrize(("values", "message"), BAD_SETTINGS)
def test_a_value_that_makes_no_sense_is_one_line_naming_key_value_and_line(
        tmp_path: Path, values: dict[str, str], message: str) -> None:
    code, output, log = start_with(tmp_path, **values)
    config = tmp_path / "mirrorbits.conf"
    line = line_of(config, next(iter(values)))
    assert line > 1  # not the first line: the line is that of the key
    assert_one_line(code, output, log)
    assert output.strip() == f"mirrorbits: {message} (line {line} in {config})"


def test_the_sample_copied_with_its_repository_still_commented_out_says_so(
        tmp_path: Path) -> None:
    # walked: a copy of contrib/mirrorbits.conf whose Repository value is set but whose '#'
    # stayed said only "(not set in F)", which reads as if the line were not there at all
    sample = (Path(__file__).parents[2] / "contrib" / "mirrorbits.conf").read_text()
    assert "\n#Repository: /srv/repo\n" in sample
    config = tmp_path / "mirrorbits.conf"
    config.write_text(sample.replace("#Repository: /srv/repo", f"#Repository: {tmp_path}"))
    line = line_of(config, "#Repository")
    result = run_twistd("-n", "--pidfile=", "mirrorbits", "--config", str(config),
                        cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [
        "mirrorbits: Path to local repository not configured (see mirrorbits.conf) "
        f"(not set in {config}: line {line} is commented out, remove its '#')"]


def test_a_misspelt_required_key_is_explained_before_the_error(tmp_path: Path) -> None:
    config = tmp_path / "mirrorbits.conf"
    config.write_text(f"repository: {tmp_path}\nRPCPasword: secret\n")
    result = run_twistd("-n", "--pidfile=", "mirrorbits", "--config", str(config),
                        cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [
        "mirrorbits: warning: unknown configuration key 'repository'; did you mean "
        f"'Repository'? (keys are case-sensitive) (line 1 in {config})",
        "mirrorbits: warning: unknown configuration key 'RPCPasword'; did you mean "
        f"'RPCPassword'? (line 2 in {config})",
        "mirrorbits: Path to local repository not configured (see mirrorbits.conf) "
        f"(not set in {config})",
    ]


def log_lines(log: str) -> list[str]:
    """The messages of a twistd log, without their time stamp and system prefix."""
    return [line.split("] ", 1)[1] for line in log.splitlines() if "] " in line]


def ctl_reload(daemon: DaemonProcess) -> tuple[int, str, str]:
    result = daemon.ctl("reload")
    return result.returncode, result.stdout, result.stderr


TYPOS = "Repositry: /srv/elsewhere\nCheckInterval: 0\nHashes: {SHA265: yes}\n"


def test_reload_shows_warnings_and_refusals_and_the_log_has_them(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    daemon = DaemonProcess(workdir=tmp_path / "run", raw="Gzipp: yes\n",
                           values=base_config(repo, redis_server.address), args=["--no-monitor"])
    daemon.start()
    conf = daemon.config_path
    try:
        good = daemon.config_path.read_text()
        gzipp = good.splitlines().index("Gzipp: yes") + 1  # the lines after the harness's
        started = ("unknown configuration key 'Gzipp'; did you mean 'Gzip'? "
                   f"(line {gzipp} in {conf})")
        assert started in log_lines(daemon.log())  # at start: in the log, one line

        conf.write_text(good + TYPOS)
        typos = len(good.splitlines())  # the line before TYPOS
        warnings = [
            started,
            "unknown configuration key 'Repositry'; did you mean 'Repository'? "
            f"(line {typos + 1} in {conf})",
            "unknown configuration key 'Hashes.SHA265'; did you mean 'SHA256'? "
            f"(line {typos + 3} in {conf})",
            "CheckInterval: 0 health-checks every mirror every second; it is a number of "
            f"minutes, 1 by default (line {typos + 2} in {conf})",
        ]
        assert ctl_reload(daemon) == (0, "", "".join(f"warning: {w}\n" for w in warnings))
        daemon.wait_log(f"{CONTROL_RELOAD}: Reloading configuration...")
        logged = log_lines(daemon.log())
        start = logged.index(f"{CONTROL_RELOAD}: Reloading configuration...")
        assert logged[start + 1:start + 1 + len(warnings)] == warnings

        conf.write_text(good + TYPOS + "ScanInterval: -5\n")
        # the line of the bad value, in the refusal and in the log
        error = ("ScanInterval must be a number of minutes >= 0, not -5 "
                 f"(line {typos + 4} in {conf})")
        code, out, err = ctl_reload(daemon)
        assert (code, out) == (1, "")
        assert err == "".join(f"warning: {w}\n" for w in warnings) + (
            f"Reload refused, the daemon keeps its running configuration: {error}\n")
        refused = f"{CONTROL_RELOAD}: {RELOAD_REFUSED}: {error}"
        daemon.wait_log(refused)
        logged = log_lines(daemon.log())
        start = logged.index(refused)
        assert logged[start + 1:start + 1 + len(warnings)] == warnings
        assert daemon.ctl("list").returncode == 0  # still serving, on the running config

        conf.write_text(good.replace("Gzipp: yes\n", ""))
        assert ctl_reload(daemon) == (0, "", "")

        # what only a restart applies is said by the reload, not only in the log
        moved = good.replace("Gzipp: yes\n", "").replace(
            f"ListenAddress: {daemon.values['ListenAddress']}", "ListenAddress: 127.0.0.1:1")
        assert "ListenAddress: 127.0.0.1:1\n" in moved
        conf.write_text(moved)
        notice = (f"ListenAddress changed ({daemon.values['ListenAddress']} to 127.0.0.1:1): "
                  "restart the daemon to apply")  # the key that changed, not two
        assert ctl_reload(daemon) == (0, "", f"warning: {notice}\n")
        daemon.wait_log(notice)
        # spec §20.5: the reference's listener broke here; this one still answers
        status, _, _ = request(daemon, "GET", "/a.txt", {})
        assert status == 404
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        daemon.stop()


def start_in_background(tmp_path: Path, config: Path) -> tuple[list[str], str]:
    """Start twistd in the background on *config*, then stop it: its terminal's lines, and
    its log."""
    pidfile = tmp_path / "m.pid"
    log = tmp_path / "twistd.log"
    result = run_twistd("--pidfile", str(pidfile), "--logfile", str(log), "mirrorbits",
                        "--config", str(config), "--no-monitor", cwd=tmp_path)
    try:
        assert result.returncode == 0, result.stderr
    finally:
        deadline = time.monotonic() + 20
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        while pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return result.stderr.splitlines(), log.read_text()


def test_a_background_start_shows_the_files_warnings_on_the_terminal(tmp_path: Path) -> None:
    """twistd without -n (or with --logfile) wrote a misspelt key's warning to the log file
    only: the start looked clean and the key silently kept its default."""
    repo = tmp_path / "repo"
    repo.mkdir()
    config = tmp_path / "mirrorbits.conf"
    config.write_text(render_config(base_config(repo, "127.0.0.1:1"), "CheckIntervl: 5\n"))
    line = config.read_text().splitlines().index("CheckIntervl: 5") + 1
    warning = ("mirrorbits: warning: unknown configuration key 'CheckIntervl'; did you mean "
               f"'CheckInterval'? (line {line} in {config})")
    terminal, log = start_in_background(tmp_path, config)
    assert terminal == [warning]
    assert "CheckIntervl" in log  # the log has it too


def test_missing_geoip_databases_are_one_line_on_the_terminal_and_in_the_log(
        tmp_path: Path) -> None:
    """The configuration check (GeoipDatabasePath does not exist) and the GeoIP loader
    (cannot load) both said it: one line now, the loader's, which says why and what
    follows."""
    repo = tmp_path / "repo"
    repo.mkdir()
    config = tmp_path / "mirrorbits.conf"
    geo = tmp_path / "geo"
    config.write_text(render_config(base_config(repo, "127.0.0.1:1",
                                                GeoipDatabasePath=f"{geo}/")))
    terminal, log = start_in_background(tmp_path, config)
    assert len(terminal) == 1, terminal
    assert terminal[0].startswith(
        f"mirrorbits: warning: GeoIP: cannot load GeoLite2-City.mmdb and GeoLite2-ASN.mmdb "
        f"from {geo}/ (No such file or directory): clients are not located")
    assert log.count("GeoIP: cannot load") == 1, log
    assert "GeoipDatabasePath" not in log
