"""The first hour of a new operator: the README's command, run as written, on real processes.

``twistd -n mirrorbits --repository docs`` in a fresh directory (with ``--listen`` and
``--control`` on free loopback ports, the only change to the README's command line): a
private redis-server under ``./mirrorbits-data``, never the machine's Redis; ``/`` and the
log say where the data is and which ``mirrorbits-ctl`` commands add a mirror; following them
with a real mirror (``rsync --daemon`` and ``python -m http.server``) gives a 302; a restart
finds the same data. ``--demo`` redirects at once. Everything HTTP is asked with curl.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from mirrorbits.embedded_redis import answers
from tests.daemon import BIN, run_twistd, wait_for_address
from tests.integration.test_cluster_daemons import wait_until
from tests.servers import RedisServer, RsyncServer, StaticHTTPServer, env_without_proxies, free_port

pytestmark = pytest.mark.integration

DOCS = Path(__file__).parents[2] / "docs"
# Lines that a normal start, a mirrorbits-ctl session and a stop must not log.
NOISE = ("Starting factory", "Stopping factory", "connection established", "connection lost",
         "Database is down", "not ready", "Traceback", "critical")


STARTED: list[EmbeddedDaemon] = []


@attrs.define
class EmbeddedDaemon:
    """``twistd -n mirrorbits --repository docs`` in ``workdir`` (a fresh directory)."""

    workdir: Path
    extra: list[str] = attrs.field(factory=list)
    http_port: int = attrs.field(factory=free_port)
    rpc_port: int = attrs.field(factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "twistd.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def command(self) -> list[str]:
        return [str(BIN / "twistd"), "-n", "--pidfile=", "--logfile", str(self.log_path),
                "mirrorbits", "--repository", "docs", "--listen", f"127.0.0.1:{self.http_port}",
                "--control", f"127.0.0.1:{self.rpc_port}", *self.extra]

    def start(self) -> None:
        STARTED.append(self)  # stopped by the ``fresh`` fixture if a test fails first
        # A session of its own, as in a terminal: Ctrl-C signals the whole process group.
        self.process = subprocess.Popen(self.command(), cwd=self.workdir,
                                        env={**env_without_proxies(), "TZ": "UTC"},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            wait_for_address(f"127.0.0.1:{self.http_port}", timeout=30)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"daemon did not start:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM, group: bool = False) -> int | None:
        """Signal the daemon (``group``: its whole process group, as Ctrl-C does)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code = self.process.returncode
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        return code

    def run(self, command_line: str) -> subprocess.CompletedProcess[str]:
        """A shell-like command line printed by the daemon, run from its directory."""
        return subprocess.run(shlex.split(command_line), cwd=self.workdir, capture_output=True,
                              text=True, timeout=60, env=env_without_proxies())


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl is not installed")
    return subprocess.run([binary, "-s", "--max-time", "20", *args], capture_output=True,
                          text=True, timeout=30, env=env_without_proxies())


def header(response: str, name: str) -> str:
    for line in response.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


def private_redis_port(workdir: Path, sub: str = "") -> int:
    return int((workdir / "mirrorbits-data" / sub / "redis" / "port").read_text())


def stop_orphan(directory: Path) -> None:
    """Stop a private redis-server left running in ``directory`` (after a SIGKILL)."""
    pid_file = directory / "redis.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Path]:
    """A directory holding a copy of the project's ``docs`` only, as after a checkout."""
    workdir = tmp_path / "checkout"
    shutil.copytree(DOCS, workdir / "docs")
    yield workdir
    while STARTED:
        STARTED.pop().stop()
    for sub in ("", "demo"):
        stop_orphan(workdir / "mirrorbits-data" / sub / "redis")


def test_readme_command_runs_a_private_redis_and_says_what_to_do_next(
        fresh: Path, tmp_path: Path) -> None:
    daemon = EmbeddedDaemon(fresh)
    daemon.start()
    mirror_http = StaticHTTPServer(fresh / "docs", host="127.0.0.7")
    rsyncd = RsyncServer(tmp_path / "rsyncd", {"docs": fresh / "docs"})
    try:
        daemon.wait_log("No mirror is registered yet")
        port = private_redis_port(fresh)
        data = fresh / "mirrorbits-data" / "redis"
        assert f"Redis: a private redis-server on 127.0.0.1:{port}, data in {data}" in daemon.log()
        assert f"RedisAddress: 127.0.0.1:{port}" in daemon.log()
        spool = fresh / "mirrorbits-data" / "stats-spool"  # made by a stop that needs it
        assert daemon.log().count(f"Statistics spool: {spool} (StatsSpoolDir)") == 1
        ctl = f"{BIN / 'mirrorbits-ctl'} -h 127.0.0.1 -p {daemon.rpc_port}"
        hint = re.search(r"No mirror is registered yet: .*", daemon.log())
        assert hint is not None and f"{ctl} add -http " in hint.group(0)

        root = curl("-i", daemon.base + "/")
        assert root.stdout.startswith("HTTP/1.1 503")
        body = root.stdout.split("\n\n", 1)[1]
        assert body.startswith("Service Unavailable\n")
        assert f"Redis:      a private redis-server on 127.0.0.1:{port}, data in {data}" in body
        assert "Mirrors:    none registered yet" in body
        commands = [line.strip() for line in body.splitlines() if line.startswith(f"  {ctl}")]
        assert len(commands) == 2, body

        # Follow the page's two commands with a real mirror in place of the example one.
        mirror_http.start()
        rsyncd.start()
        add = commands[0].replace("https://mirror.example.org/pub/", mirror_http.url)
        add = add.replace("rsync://mirror.example.org/pub/", rsyncd.url("docs"))
        added = daemon.run(add)
        assert added.returncode == 0, added.stderr
        scanned = daemon.run(commands[1])
        assert scanned.returncode == 0, scanned.stderr
        assert "Enabled" in scanned.stdout
        location = ""

        def redirected() -> bool:
            nonlocal location
            location = header(curl("-i", daemon.base + "/architecture.md").stdout, "location")
            return bool(location)

        wait_until(redirected, 30, "a redirect once the mirror is up")
        assert location == mirror_http.url + "architecture.md"
        page = ""

        def page_counts_it() -> bool:  # the page is recomputed at most every 2 s
            nonlocal page
            page = curl(daemon.base + "/").stdout
            return "Mirrors:    1 registered" in page

        wait_until(page_counts_it, 10, "the mirror counted on /")
        assert "/architecture.md?mirrorlist shows which mirrors" in page
        log = daemon.log()
    finally:
        daemon.stop()
        mirror_http.stop()
        rsyncd.stop()
    assert [line for line in log.splitlines() if any(n in line for n in NOISE)] == []
    wait_until(lambda: not answers("127.0.0.1", port), 15, "the private redis-server stops")
    assert (data / "dump.rdb").exists()  # saved at its stop

    # The same command again: the same port, the same data (the mirror added above).
    again = EmbeddedDaemon(fresh, http_port=daemon.http_port, rpc_port=daemon.rpc_port)
    again.start()
    try:
        assert private_redis_port(fresh) == port
        wait_until(lambda: "example" in again.run(f"{ctl} list").stdout, 20, "the mirror")
    finally:
        again.stop()


def test_ctrl_c_stops_the_daemon_then_its_redis_server(fresh: Path) -> None:
    """Ctrl-C reaches the whole process group: the private server must not die first, or
    the last statistics flush is lost and its death logged as a failure."""
    daemon = EmbeddedDaemon(fresh)
    daemon.start()
    daemon.wait_log("No mirror is registered yet")
    port = private_redis_port(fresh)
    assert daemon.process is not None
    redis_pid = int((fresh / "mirrorbits-data" / "redis" / "redis.pid").read_text())
    assert os.getpgid(redis_pid) != os.getpgid(daemon.process.pid)
    daemon.stop(signal.SIGINT, group=True)  # twistd exits by the signal, as it should
    log = daemon.log()
    assert "redis-server stopped" not in log
    assert "Database is down" not in log
    assert "Server Shut Down." in log
    wait_until(lambda: not answers("127.0.0.1", port), 15, "the private redis-server stops")


def test_the_machines_redis_is_never_used_without_being_named(
        fresh: Path, tmp_path: Path) -> None:
    """A Redis answering where the reference's default points is not touched: the private
    one is used. ``--redis-address`` names another, and then no private server runs."""
    named = RedisServer(tmp_path / "named")
    named.start()
    try:
        daemon = EmbeddedDaemon(fresh, ["--redis-address", named.address])
        daemon.start()
        try:
            daemon.wait_log("Connected to redis master")
            assert (f"Redis: {named.address}, database 0 (given by --redis-address)"
                    in daemon.log())
            assert not (fresh / "mirrorbits-data").exists()
        finally:
            daemon.stop()
    finally:
        named.stop()


def test_a_private_redis_left_running_is_used_not_started_twice(fresh: Path) -> None:
    daemon = EmbeddedDaemon(fresh)
    daemon.start()
    daemon.wait_log("Connected to redis master")
    port = private_redis_port(fresh)
    daemon.stop(signal.SIGKILL)  # its redis-server child is left behind
    assert answers("127.0.0.1", port)
    pid = int((fresh / "mirrorbits-data" / "redis" / "redis.pid").read_text())
    again = EmbeddedDaemon(fresh)
    again.start()
    try:
        again.wait_log("Connected to redis master")
        assert (f"a private redis-server already running on 127.0.0.1:{port}, data in "
                f"{fresh / 'mirrorbits-data' / 'redis'} (pid {pid}, left by an earlier process"
                in again.log())
    finally:
        again.stop()
    assert answers("127.0.0.1", port)  # not this process' to stop


def test_demo_redirects_at_once(fresh: Path) -> None:
    daemon = EmbeddedDaemon(fresh, ["--demo"])
    daemon.start()
    try:
        daemon.wait_log("Demo: downloads are redirected to the demo mirrors now", timeout=60)
        url = daemon.base + "/architecture.md"
        assert f"Try: curl -i {url}" in daemon.log()
        response = curl("-i", url).stdout
        assert response.startswith("HTTP/1.1 302")
        location = header(response, "location")
        assert re.fullmatch(r"http://127\.0\.0\.[23]:\d+/architecture\.md", location), response
        assert curl(location).stdout == (fresh / "docs" / "architecture.md").read_text()
        listed = daemon.run(f"{BIN / 'mirrorbits-ctl'} -h 127.0.0.1 -p {daemon.rpc_port} list")
        assert re.search(r"demo-a\s+up", listed.stdout) and re.search(r"demo-b\s+up",
                                                                       listed.stdout)
        page = curl(daemon.base + "/").stdout
        assert "Mirrors:    2 registered" in page
        assert (fresh / "mirrorbits-data" / "demo" / "redis" / "port").exists()
        assert not (fresh / "mirrorbits-data" / "redis").exists()  # the real setup stays clean
        rsync_ports = [int(p) for p in re.findall(r"rsync://127\.0\.0\.[23]:(\d+)/",
                                                  daemon.log())]
        log = daemon.log()
    finally:
        daemon.stop()
    assert len(rsync_ports) == 2
    assert not any(answers(host, port) for host, port in zip(("127.0.0.2", "127.0.0.3"),
                                                             rsync_ports, strict=True))
    assert [line for line in log.splitlines() if any(n in line for n in NOISE)] == []
    assert log.count("[source] Scanning the filesystem...") == 1  # the demo waits for it


def test_a_second_demo_run_checks_its_mirrors_on_the_new_ports(fresh: Path) -> None:
    """The mirrors kept from the first run named that run's ports, where nothing listens
    any more: a health check there marked one down until the next CheckInterval (1 min)."""
    bulk = fresh / "docs" / "bulk"  # indexing and scans long enough for a health check round
    bulk.mkdir()
    for number in range(4000):
        (bulk / f"{number}.txt").write_text(f"{number}\n")
    first = EmbeddedDaemon(fresh, ["--demo"])
    first.start()
    try:
        first.wait_log("Demo: downloads are redirected to the demo mirrors now", timeout=60)
    finally:
        first.stop()
    before = len(first.log())
    second = EmbeddedDaemon(fresh, ["--demo"])
    second.start()
    try:
        deadline = time.monotonic() + 60
        while "Demo: downloads are redirected" not in second.log()[before:]:
            assert time.monotonic() < deadline, second.log()[before:]
            time.sleep(0.1)
        ctl = f"{BIN / 'mirrorbits-ctl'} -h 127.0.0.1 -p {second.rpc_port} list"
        deadline = time.monotonic() + 10
        while not re.search(r"demo-a\s+up.*\n.*demo-b\s+up|demo-b\s+up.*\n.*demo-a\s+up",
                            listed := second.run(ctl).stdout):
            assert time.monotonic() < deadline, listed + second.log()[before:]
            time.sleep(0.2)
        log = second.log()[before:]
    finally:
        second.stop()
    assert " HTTP  Error" not in log, log


def test_a_demo_keeps_its_mirrors_when_its_redis_server_is_killed(fresh: Path) -> None:
    """Registered a second and a half before a SIGKILL of the private redis-server (the
    OOM killer's), the demo mirrors are still there, on this run's ports, after its restart."""
    daemon = EmbeddedDaemon(fresh, ["--demo"])
    daemon.start()
    try:
        daemon.wait_log("Demo: downloads are redirected to the demo mirrors now", timeout=60)
        time.sleep(1.5)
        directory = fresh / "mirrorbits-data" / "demo" / "redis"
        assert not (directory / "dump.rdb").exists()  # no snapshot yet: the AOF keeps them
        os.kill(int((directory / "redis.pid").read_text()), signal.SIGKILL)
        daemon.wait_log("The private redis-server was killed (signal 9): changes of its last "
                        "second at most are lost; restarting it in 1 s")
        rsync_urls = set(re.findall(r"rsync://127\.0\.0\.[23]:\d+/\S*/", daemon.log()))
        assert len(rsync_urls) == 2, daemon.log()
        port = private_redis_port(fresh, "demo")
        wait_until(lambda: answers("127.0.0.1", port), 15, "the private redis-server restarts")
        with RedisServer(directory, port=port).client() as client:
            wait_until(lambda: bool(client.hgetall("MIRRORS")), 15, "the data loaded")
            kept = {url for ident in client.hkeys("MIRRORS")
                    for url in client.hgetall(f"MIRROR_{ident}").values()}
        assert rsync_urls <= kept, (rsync_urls, kept)
        url = daemon.base + "/architecture.md"
        deadline = time.monotonic() + 30
        while not (response := curl("-i", url).stdout).startswith("HTTP/1.1 302"):
            assert time.monotonic() < deadline, response + daemon.log()
            time.sleep(0.2)
        location = header(response, "location")
        assert curl(location).stdout == (fresh / "docs" / "architecture.md").read_text()
        # (a 302 can come from memory before the daemon is back on its Redis: ctl waits for it)
        command = f"{BIN / 'mirrorbits-ctl'} -h 127.0.0.1 -p {daemon.rpc_port} list"
        while "cannot use its Redis" in (listed := daemon.run(command)).stderr + listed.stdout:
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        assert re.search(r"demo-a\s+up", listed.stdout) and re.search(r"demo-b\s+up",
                                                                       listed.stdout), listed
    finally:
        daemon.stop()


@pytest.mark.parametrize(("args", "message"), [
    (["--demo", "--no-monitor"], "mirrorbits: --demo needs the scans and health checks: "
                                 "drop --no-monitor"),
    (["--demo", "--redis-address", "127.0.0.1:1"],
     "mirrorbits: --demo runs on its own private Redis: drop --redis-address"),
    (["--listen", "8080"],
     "mirrorbits: --listen '8080' is invalid: expected host:port or unix:/path (':8080' listens "
     "on every address)"),
    (["--redis-address", "[::1]"], "mirrorbits: --redis-address '[::1]' is invalid: "
                                   "expected [IPv6 address]:port"),
])
def test_embedded_options_refused_in_one_line(fresh: Path, args: list[str],
                                              message: str) -> None:
    result = run_twistd("-n", "--pidfile=", "mirrorbits", "--repository", "docs", *args,
                        cwd=fresh)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in result.stderr + result.stdout


def test_without_redis_server_the_start_says_what_to_do(fresh: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = run_twistd("-n", "--pidfile=", "mirrorbits", "--repository", "docs", cwd=fresh,
                        env={"PATH": str(empty)})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "mirrorbits: redis-server is not installed (apt-get install redis-server), or pass "
        "--redis-address HOST:PORT to use a running Redis")


def test_embedded_options_need_the_embedded_configuration(fresh: Path) -> None:
    config = fresh / "mirrorbits.conf"
    config.write_text(f"Repository: {fresh / 'docs'}\n")
    result = run_twistd("-n", "--pidfile=", "mirrorbits", "--config", str(config), "--listen",
                        "127.0.0.1:1", cwd=fresh)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "mirrorbits: --listen applies to the embedded configuration only (no configuration "
        f"file), and {config} is used: set ListenAddress in {config} instead")
