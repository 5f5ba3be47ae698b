"""The real daemon under a stand-in for systemd: socket activation and ``Type=notify``.

The test plays systemd's part: it binds the listening socket, starts twistd with it as
descriptor 3 (``LISTEN_FDS``, ``LISTEN_PID``, ``LISTEN_FDNAMES``), and reads what the
daemon sends to ``NOTIFY_SOCKET``, with each sender's pid (``SO_PASSCRED``).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import redis

from tests.daemon import BIN, DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.servers import RedisServer, env_without_proxies, free_port

ROOT = Path(__file__).parents[2]
CLIENT = {"X-Forwarded-For": "100.96.2.10"}
MIRROR_URL = "http://127.0.0.31/a.txt"
# What systemd does between fork and exec: the sockets from descriptor 3 on, LISTEN_PID.
EXEC_LIKE_SYSTEMD = (
    "import os, sys\n"
    "fds = [int(fd) for fd in sys.argv[1].split(',') if fd]\n"
    "copies = [os.dup(fd) for fd in fds]\n"
    "for fd in fds:\n"
    "    os.close(fd)\n"
    "for number, fd in enumerate(copies, 3):\n"
    "    os.dup2(fd, number)\n"
    "    os.set_inheritable(number, True)\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


@attrs.define
class Notification:
    pid: int
    fields: dict[str, str]


@attrs.define
class NotifySocket:
    """The datagram socket systemd would own, and the notifications read from it."""

    path: str
    sock: socket.socket
    received: list[Notification] = attrs.field(factory=list)

    @classmethod
    def bound(cls, directory: str) -> NotifySocket:
        path = os.path.join(directory, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        return cls(path, sock)

    def next(self, timeout: float) -> Notification | None:
        self.sock.settimeout(timeout)
        try:
            data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = 0
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", value[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        notification = Notification(pid, fields)
        self.received.append(notification)
        return notification

    def wait_for(self, key: str, timeout: float = 20.0) -> Notification:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            notification = self.next(left)
            if notification is not None and key in notification.fields:
                return notification
        raise AssertionError(f"no {key} notification; received {self.received}")

    def quiet_for(self, seconds: float) -> list[Notification]:
        """Everything received during ``seconds``."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            notification = self.next(left)
            if notification is not None:
                got.append(notification)
        return got


def tcp_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def unix_listener(path: Path, mode: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, mode)
    sock.listen(128)
    return sock


@attrs.define
class ActivatedDaemon(DaemonProcess):
    """twistd started the way systemd starts a socket-activated ``Type=notify`` service."""

    sockets: list[socket.socket] = attrs.field(factory=list)
    names: str = "http"
    notify_path: str = ""

    def start(self, wait_http: bool = False) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        env = env_without_proxies()
        env.update(TZ="UTC", NOTIFY_SOCKET=self.notify_path, LISTEN_FDS=str(len(self.sockets)),
                   LISTEN_FDNAMES=self.names)
        env.update(self.env)
        fds = [sock.fileno() for sock in self.sockets]
        self.process = subprocess.Popen(
            [sys.executable, "-c", EXEC_LIKE_SYSTEMD, ",".join(map(str, fds)),
             str(BIN / "twistd"), "-n", "--pidfile=", "--logfile", str(self.log_path),
             "mirrorbits", "--config", str(self.config_path), *self.args],
            cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=fds, start_new_session=True)


def get(address: tuple[str, int], timeout: float = 10) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request("GET", "/a.txt", headers=CLIENT)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory with a short path (UNIX socket paths are limited to 107 bytes)."""
    directory = tempfile.mkdtemp(prefix="mb-sd-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def notify(short_dir: str) -> Iterator[NotifySocket]:
    sock = NotifySocket.bound(short_dir)
    yield sock
    sock.sock.close()


@contextlib.contextmanager
def activated(tmp_path: Path, redis_address: str, notify: NotifySocket,
              sockets: list[socket.socket], names: str = "http", raw: str = "",
              **values: str) -> Iterator[ActivatedDaemon]:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    daemon = ActivatedDaemon(workdir=tmp_path / "run",
                             values=base_config(repo, redis_address, **values),
                             args=["--no-monitor"], raw=raw, sockets=sockets, names=names,
                             notify_path=notify.path)
    daemon.start()
    assert daemon.process is not None
    group = daemon.process.pid
    try:
        yield daemon
    finally:
        daemon.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def test_ready_reload_and_stop_are_notified_on_the_inherited_socket(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis,
        notify: NotifySocket) -> None:
    listener = tcp_listener()
    address = listener.getsockname()
    configured = free_port()
    with activated(tmp_path, redis_server.address, notify, [listener],
                   ListenAddress=f"127.0.0.1:{configured}") as daemon:
        assert daemon.process is not None
        ready = notify.wait_for("READY")
        # READY=1 once it answers: a request right now is served (nothing indexed yet).
        assert get(address, timeout=5)[0] == 503
        assert ready.pid == daemon.process.pid
        assert ready.fields == {"READY": "1",
                                "STATUS": f"Serving HTTP on 127.0.0.1:{address[1]}"}
        with pytest.raises(OSError):  # ListenAddress is not used: systemd's socket is
            socket.create_connection(("127.0.0.1", configured), timeout=2).close()
        assert daemon.ctl("refresh").returncode == 0
        put_a_txt_on_a_mirror(daemon, redis_db)
        deadline = time.monotonic() + 10
        while get(address) != (302, MIRROR_URL):
            assert time.monotonic() < deadline, "never redirected to the mirror"
            time.sleep(0.05)

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        daemon.signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert before <= int(reloading.fields["MONOTONIC_USEC"]) <= after
        reloaded = notify.wait_for("READY")
        assert reloaded.fields["STATUS"] == f"Serving HTTP on 127.0.0.1:{address[1]}"
        assert notify.received[-2:] == [reloading, reloaded]  # nothing in between

        good = daemon.config_path.read_text()
        daemon.config_path.write_text(good + "OutputMode: bogus\n")
        failed = daemon.ctl("reload")
        assert failed.returncode != 0
        notify.wait_for("RELOADING")
        refused = notify.wait_for("READY")
        assert "reload refused: Config: outputMode can only be" in refused.fields["STATUS"]
        assert get(address) == (302, MIRROR_URL)

        daemon.signal(signal.SIGTERM)
        stopping = notify.wait_for("STOPPING")
        assert stopping.pid == daemon.process.pid
        assert daemon.process.wait(20) in (0, -signal.SIGTERM)
        assert "Traceback" not in daemon.log(), daemon.log()
    # systemd's copy of the socket still accepts: the daemon only closed its own.
    socket.create_connection(address, timeout=2).close()
    listener.close()


def test_workers_serve_systemd_socket_and_only_the_daemon_notifies(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis,
        notify: NotifySocket) -> None:
    listener = tcp_listener()
    address = listener.getsockname()
    with activated(tmp_path, redis_server.address, notify, [listener], Workers="2") as daemon:
        assert daemon.process is not None
        ready = notify.wait_for("READY")
        assert get(address, timeout=5)[0] == 503  # READY=1 once the workers answer
        assert ready.pid == daemon.process.pid
        assert ready.fields["STATUS"] == (
            f"Serving HTTP on 127.0.0.1:{address[1]} (2 worker processes)")
        assert "HTTP served by 2 worker processes" in daemon.log()
        daemon.signal(signal.SIGTERM)
        assert notify.wait_for("STOPPING").pid == daemon.process.pid
        assert daemon.process.wait(20) in (0, -signal.SIGTERM)
        assert {n.pid for n in notify.received} == {daemon.process.pid}  # no worker's
        assert "Traceback" not in daemon.log(), daemon.log()
    socket.create_connection(address, timeout=2).close()  # systemd's copy still accepts
    listener.close()


def test_ready_waits_for_serving_while_redis_is_down(
        tmp_path: Path, notify: NotifySocket) -> None:
    listener = tcp_listener()
    address = listener.getsockname()
    redis_port = free_port()
    server = RedisServer(workdir=tmp_path / "redis", port=redis_port)
    started = time.monotonic()
    try:
        with activated(tmp_path, f"127.0.0.1:{redis_port}", notify, [listener]) as daemon:
            ready = notify.wait_for("READY")
            waited = time.monotonic() - started
            assert waited >= 1.5, waited  # the bounded wait for Redis (2 s) came first
            assert ready.fields["STATUS"] == (
                f"Serving HTTP on 127.0.0.1:{address[1]} (database not ready)")
            assert "not ready after 2s: serving anyway" in daemon.log()
            assert get(address)[0] == 503  # served (no mirror, no fallback)
            server.start()
            update = notify.wait_for("STATUS")
            assert update.fields == {"STATUS": f"Serving HTTP on 127.0.0.1:{address[1]}"}
    finally:
        server.stop()
    listener.close()


def test_the_successor_of_an_upgrade_becomes_the_main_process(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis,
        notify: NotifySocket) -> None:
    listener = tcp_listener()
    address = listener.getsockname()
    with activated(tmp_path, redis_server.address, notify, [listener]) as daemon:
        assert daemon.process is not None
        old = daemon.process
        notify.wait_for("READY")
        daemon.signal(signal.SIGUSR2)
        took_over = notify.wait_for("MAINPID")
        child = int(took_over.fields["MAINPID"])
        assert took_over.pid == child != old.pid
        assert took_over.fields["READY"] == "1"
        assert old.wait(20) == 0
        # The old process tells systemd nothing more: its STOPPING=1 would stop the service.
        notify.quiet_for(0.5)
        after = notify.received[notify.received.index(took_over) + 1:]
        assert [n for n in after if n.pid == old.pid] == [], notify.received
        assert get(address)[0] in (302, 503)  # the successor serves the same socket
        os.kill(child, signal.SIGHUP)
        assert notify.wait_for("RELOADING").pid == child
        os.kill(child, signal.SIGTERM)
        assert notify.wait_for("STOPPING").pid == child
        deadline = time.monotonic() + 20
        while alive(child):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    listener.close()


def test_an_inherited_unix_socket_keeps_its_mode_and_file(
        tmp_path: Path, redis_server: RedisServer, notify: NotifySocket,
        short_dir: str) -> None:
    path = Path(short_dir) / "http.sock"
    listener = unix_listener(path, 0o660)
    with activated(tmp_path, redis_server.address, notify, [listener]) as daemon:
        assert daemon.process is not None
        ready = notify.wait_for("READY")
        assert ready.fields["STATUS"] == f"Serving HTTP on unix:{path}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(b"GET /a.txt HTTP/1.0\r\nHost: x\r\n\r\n")
            assert client.recv(12).split()[1] == b"503"
        daemon.signal(signal.SIGTERM)
        daemon.process.wait(20)
    # The file and the socket are systemd's: both still there, still listening.
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(path))
    listener.close()


def test_http_and_control_sockets_are_told_apart_by_name(
        tmp_path: Path, redis_server: RedisServer, notify: NotifySocket,
        short_dir: str) -> None:
    control_path = Path(short_dir) / "control.sock"
    control = unix_listener(control_path, 0o600)
    http_socket = tcp_listener()
    with activated(tmp_path, redis_server.address, notify, [control, http_socket],
                   names="control:http", RPCListenAddress=f"unix:{control_path}") as daemon:
        ready = notify.wait_for("READY")
        assert ready.fields["STATUS"].endswith(f":{http_socket.getsockname()[1]}")
        listed = daemon.ctl("list")
        assert listed.returncode == 0, listed.stderr
        refused = daemon.ctl("upgrade")
        assert refused.returncode != 0
        assert "control socket passed by systemd: use systemctl restart" in refused.stderr
    control.close()
    http_socket.close()


def test_the_metrics_socket_is_told_apart_by_name(
        tmp_path: Path, redis_server: RedisServer, notify: NotifySocket) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    http_socket, metrics_socket = tcp_listener(), tcp_listener()
    port = metrics_socket.getsockname()[1]
    with activated(tmp_path, redis_server.address, notify, [http_socket, metrics_socket],
                   names="http:metrics") as daemon:
        notify.wait_for("READY")
        assert get(("127.0.0.1", http_socket.getsockname()[1]))[0] == 503  # no mirror
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        requests = {sample.labels["outcome"]: sample.value
                    for family in text_string_to_metric_families(text)
                    for sample in family.samples if sample.name == "mirrorbits_requests_total"}
        assert requests["5xx"] == 1
        refused = daemon.ctl("upgrade")
        assert refused.returncode != 0
        assert "metrics socket passed by systemd: use systemctl restart" in refused.stderr
    http_socket.close()
    metrics_socket.close()


@pytest.mark.parametrize(
    ("names", "count", "message"),
    [
        ("a:b", 2, "systemd passed 2 sockets named 'a:b': name them 'http' and 'control' "
                   "(FileDescriptorName=)"),
        ("http:http", 2, "systemd passed two sockets named 'http'"),
        ("http", 2, "systemd: LISTEN_FDNAMES='http' names 1 sockets, LISTEN_FDS=2"),
    ],
)
def test_sockets_that_cannot_be_told_apart_are_one_line(
        tmp_path: Path, notify: NotifySocket, names: str, count: int, message: str) -> None:
    listeners = [tcp_listener() for _ in range(count)]
    with activated(tmp_path, "127.0.0.1:1", notify, listeners[:count], names=names) as daemon:
        assert daemon.process is not None
        daemon.process.wait(30)
        assert daemon.process.returncode == 1
        assert daemon.process.stdout is not None
        output = daemon.process.stdout.read().decode()
        assert output.strip() == f"mirrorbits: {message}"
    for listener in listeners:
        listener.close()


def test_a_descriptor_that_is_no_listening_socket_is_one_line(
        tmp_path: Path, notify: NotifySocket) -> None:
    unconnected = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with activated(tmp_path, "127.0.0.1:1", notify, [unconnected]) as daemon:
        assert daemon.process is not None and daemon.process.stdout is not None
        daemon.process.wait(30)
        output = daemon.process.stdout.read().decode()
        assert daemon.process.returncode == 1
        assert output.strip() == (
            "mirrorbits: ListenAddress: descriptor 3 is not a listening stream socket")
    unconnected.close()


def test_shipped_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = tmp_path / "units"
    units.mkdir()
    for unit in (ROOT / "contrib" / "systemd").glob("mirrorbits*"):
        text = unit.read_text().replace("/usr/bin/twistd", str(BIN / "twistd"))
        (units / unit.name).write_text(text)
    assert sorted(p.name for p in units.iterdir()) == ["mirrorbits.service", "mirrorbits.socket"]
    service = (units / "mirrorbits.service").read_text()
    for line in ("Type=notify", "NotifyAccess=all", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in service.splitlines()
    assert "FileDescriptorName=http" in (units / "mirrorbits.socket").read_text().splitlines()
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(p) for p in sorted(units.iterdir()))],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if str(units) in line or "mirrorbits" in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr
