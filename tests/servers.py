"""Real servers for the integration tests: each started on a free loopback port."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import attrs
import redis

#: The ports :func:`free_port` hands out: below the kernel's ephemeral range, split in
#: slots of :data:`PORTS_PER_SLOT`, one per xdist worker (or per serial run, by its pid).
FIRST_PORT = 10000
PORTS_PER_SLOT = 1000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_slot() -> range:
    slots = max(1, (_ephemeral_low() - FIRST_PORT) // PORTS_PER_SLOT)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker[2:].isdigit() else 8 + os.getpid() % max(1, slots - 8)
    first = FIRST_PORT + (index % slots) * PORTS_PER_SLOT
    return range(first, first + PORTS_PER_SLOT)


_SLOT = _port_slot()
_handed_out = [os.getpid() % PORTS_PER_SLOT]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now, and that no other test process is
    given: a port the kernel picked (``bind`` to 0) could be picked again for another
    xdist worker, or for an outgoing connection, before the daemon it was meant for binds
    it (a daemon then failed to start while the test waited on somebody else's socket)."""
    for _ in range(len(_SLOT)):
        port = _SLOT[_handed_out[0] % len(_SLOT)]
        _handed_out[0] += 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_SLOT}")


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Return once ``host:port`` accepts connections, or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.02)


@attrs.define
class RedisServer:
    """A private ``redis-server`` without persistence."""

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    password: str = ""
    replica_of: RedisServer | None = None
    extra_args: list[str] = attrs.field(factory=list)  # more redis-server options
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self, db: int = 0) -> redis.Redis:
        """A synchronous client with text replies (close it after use)."""
        return redis.Redis(host=self.host, port=self.port, db=db, password=self.password or None,
                           decode_responses=True, socket_timeout=10)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        if not self.port:
            self.port = free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            binary, "--bind", self.host, "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
        ]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of is not None:
            args += ["--replicaof", self.replica_of.host, str(self.replica_of.port)]
        args += self.extra_args
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        wait_for_port(self.host, self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@attrs.define
class SentinelServer:
    """A ``redis-sentinel`` watching ``master`` as ``master_name``, with short timeouts.

    Quorum 1, so that one sentinel may fail over on its own; the sentinel's file is
    rewritten by the sentinel itself (failovers are recorded there).
    """

    workdir: Path
    master: RedisServer
    master_name: str = "mymaster"
    host: str = "127.0.0.1"
    port: int = 0
    down_after_ms: int = 1000
    failover_timeout_ms: int = 4000
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            raise RuntimeError("redis-sentinel is not installed")
        if not self.port:
            self.port = free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "sentinel.conf"
        name = self.master_name
        lines = [
            f"port {self.port}", f"bind {self.host}", f"dir {self.workdir}",
            f"sentinel monitor {name} {self.master.host} {self.master.port} 1",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
        ]
        if self.master.password:
            lines.append(f"sentinel auth-pass {name} {self.master.password}")
        conf.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        wait_for_port(self.host, self.port)

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, decode_responses=True,
                           socket_timeout=10)

    def master_address(self) -> str:
        """The master's ``host:port`` as this sentinel names it now."""
        with self.client() as client:
            host, port = client.execute_command("SENTINEL", "get-master-addr-by-name",
                                                self.master_name)
        return f"{host}:{port}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@attrs.define
class ReplicatedRedis:
    """A master, one replica and sentinels: real processes on loopback."""

    master: RedisServer
    replica: RedisServer
    sentinels: list[SentinelServer]

    @classmethod
    def start(cls, workdir: Path, sentinels: int = 2) -> ReplicatedRedis:
        """Start the servers; return once the replica is in sync and the sentinels know it."""
        master = RedisServer(workdir=workdir / "master")
        replica = RedisServer(workdir=workdir / "replica", replica_of=master)
        group = cls(master, replica, [
            SentinelServer(workdir=workdir / f"sentinel{n}", master=master)
            for n in range(sentinels)])
        try:
            master.start()
            replica.start()
            group.wait_replicated(master, timeout=20)
            for sentinel in group.sentinels:
                sentinel.start()
            group.wait_sentinels_know_the_replica(timeout=30)
        except BaseException:
            group.stop()
            raise
        return group

    @property
    def servers(self) -> tuple[RedisServer, RedisServer]:
        return self.master, self.replica

    def current_master(self) -> RedisServer:
        """The master the sentinels name (the first server, without sentinels)."""
        if not self.sentinels:
            return self.master
        named = self.sentinels[0].master_address()
        return next(s for s in self.servers if s.address == named)

    def wait_replicated(self, master: RedisServer, timeout: float) -> None:
        """Until ``master`` has a replica whose link is up."""
        deadline = time.monotonic() + timeout
        with master.client() as client:
            while True:
                info = client.info("replication")
                if info.get("role") == "master" and any(
                        isinstance(v, dict) and v.get("state") == "online"
                        for k, v in info.items() if k.startswith("slave")):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{master.address} has no online replica: {info}")
                time.sleep(0.05)

    def wait_sentinels_know_the_replica(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                while True:
                    replicas = client.execute_command("SENTINEL", "replicas",
                                                      sentinel.master_name)
                    flags = [_fields(r).get("flags", "") for r in replicas]
                    if flags and all(f == "slave" for f in flags):
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"sentinel {sentinel.address} sees {flags}")
                    time.sleep(0.1)

    def failover(self, timeout: float = 30.0) -> tuple[RedisServer, RedisServer]:
        """``SENTINEL FAILOVER`` on the last sentinel; ``(former, new)`` masters once every
        sentinel names the new one.

        The former master goes on acting as a master until the sentinels demote it, some
        seconds later (:meth:`wait_demoted`).
        """
        old = self.current_master()
        new = self.replica if old is self.master else self.master
        trigger = self.sentinels[-1]
        with trigger.client() as client:
            client.execute_command("SENTINEL", "FAILOVER", trigger.master_name)
        deadline = time.monotonic() + timeout
        while any(s.master_address() != new.address for s in self.sentinels):
            if time.monotonic() > deadline:
                raise TimeoutError("the sentinels did not all switch to the new master")
            time.sleep(0.02)
        return old, new

    def wait_demoted(self, old: RedisServer, new: RedisServer, timeout: float = 30.0) -> None:
        """Until the former master ``old`` replicates from ``new``."""
        self.wait_replicated(new, timeout)
        with old.client() as client:
            assert client.execute_command("ROLE")[0] == "slave"

    def stop(self) -> None:
        for server in [*self.sentinels, self.replica, self.master]:
            with contextlib.suppress(Exception):  # stop the others whatever happens
                server.stop()


def _fields(reply: object) -> dict[str, object]:
    """A ``SENTINEL replicas`` entry (a flat list, or a dict once parsed by redis-py)."""
    if isinstance(reply, dict):
        return {str(k): v for k, v in reply.items()}
    assert isinstance(reply, list)
    return {str(k): v for k, v in zip(reply[::2], reply[1::2], strict=False)}


def env_without_proxies() -> dict[str, str]:
    """The test process' environment, minus anything that could send traffic elsewhere."""
    env = dict(os.environ)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)
    return env


def start_server_process(command: list[str], host: str, port: int, cwd: Path | None = None,
                         wait: bool = True) -> subprocess.Popen[bytes]:
    """Start ``command`` (a server, quiet, without proxies); unless told not to ``wait``,
    return once ``host:port`` accepts."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env_without_proxies())
    if wait:
        wait_for_server_process(process, host, port)
    return process


def wait_for_server_process(process: subprocess.Popen[bytes], host: str, port: int) -> None:
    """Return once ``host:port`` accepts; stop ``process`` if it never does."""
    try:
        wait_for_port(host, port)
    except TimeoutError:
        stop_server_process(process)
        raise


def stop_server_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.terminate()
        process.wait(10)


@attrs.define
class StaticHTTPServer:
    """A mirror serving the files under ``root`` on ``host``: ``python -m http.server``, or,
    with an ``access_log``, ``twistd web`` (byte ranges, as a real mirror serves them, and a
    line in ``access_log`` for each request)."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    access_log: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self, wait: bool = True) -> None:
        """Start the server; unless told not to ``wait``, return once it accepts
        (:meth:`wait_ready`)."""
        if not self.port:
            self.port = free_port(self.host)
        if self.access_log is None:
            command = [sys.executable, "-m", "http.server", "--bind", self.host, "--directory",
                       str(self.root), str(self.port)]
        else:
            command = [str(Path(sys.executable).parent / "twistd"), "-n", "--pidfile=",
                       f"--logfile={self.access_log}", "web", "--path", str(self.root),
                       "--listen", f"tcp:{self.port}:interface={self.host}"]
        self.process = start_server_process(command, self.host, self.port, wait=wait)

    def wait_ready(self) -> None:
        assert self.process is not None
        wait_for_server_process(self.process, self.host, self.port)

    def stop(self) -> None:
        stop_server_process(self.process)
        self.process = None


def start_mirrors(servers: Iterable[StaticHTTPServer]) -> None:
    """Start every server at once (their start-ups overlap); return once all accept."""
    started = list(servers)
    for server in started:
        server.start(wait=False)
    for server in started:
        server.wait_ready()


@attrs.define
class HostileServer:
    """``tests/hostile_<kind>.py`` in ``mode`` on ``host``: a mirror that misbehaves on purpose.

    ``kind`` is ``http`` or ``ftp``."""

    kind: str
    mode: str
    report: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.kind}://{self.host}:{self.port}"

    def start(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        self.process = start_server_process(
            [sys.executable, "-m", f"tests.hostile_{self.kind}", self.mode, self.host,
             str(self.port), str(self.report)], self.host, self.port,
            cwd=Path(__file__).parent.parent)
        self.report.write_text("")  # the readiness probe's connection is not counted

    def sent(self) -> list[int]:
        """Bytes sent on each connection that is over (the readiness probe's excepted)."""
        return [int(line) for line in self.report.read_text().split()]

    def stop(self) -> None:
        stop_server_process(self.process)
        self.process = None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_tree(tree: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """A mirror serving the files under ``tree`` on ``host`` from a thread of this process
    (no request logged): its base URL while the block runs."""
    with http_server(functools.partial(_QuietHandler, directory=str(tree)), host) as url:
        yield url


@contextlib.contextmanager
def http_server(handler: Callable[..., http.server.BaseHTTPRequestHandler],
                host: str = "127.0.0.1") -> Iterator[str]:
    """``handler`` answering on ``host`` from a thread of this process: its base URL while
    the block runs."""
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@attrs.define
class RsyncServer:
    """``rsync --daemon`` on ``host`` serving each module (name -> tree) read-only; its
    configuration, pid and log files in ``workdir``. ``settings`` (lines) are appended to the
    configuration: after the last module, so that they apply to it."""

    workdir: Path
    modules: dict[str, Path]
    host: str = "127.0.0.1"
    settings: Sequence[str] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def url(self, module: str) -> str:
        return f"rsync://{self.host}:{self.port}/{module}/"

    def start(self) -> None:
        """Start it and return once it accepts; ``RuntimeError`` without rsync."""
        binary = shutil.which("rsync")
        if binary is None:
            raise RuntimeError("rsync is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        conf = self.workdir / "rsyncd.conf"
        lines = ["use chroot = no", f"uid = {os.getuid()}", f"gid = {os.getgid()}",
                 f"pid file = {self.workdir / 'rsyncd.pid'}",
                 f"log file = {self.workdir / 'rsyncd.log'}"]
        for name, path in self.modules.items():
            lines += [f"[{name}]", f"path = {path}", "read only = yes"]
        conf.write_text("\n".join([*lines, *self.settings]) + "\n")
        self.process = start_server_process(
            [binary, "--daemon", "--no-detach", f"--config={conf}", f"--port={self.port}",
             f"--address={self.host}"], self.host, self.port)

    def stop(self) -> None:
        stop_server_process(self.process)
        self.process = None


@contextlib.contextmanager
def rsync_daemon(workdir: Path, modules: dict[str, Path], host: str = "127.0.0.1",
                 settings: Sequence[str] = ()) -> Iterator[RsyncServer]:
    """A started :class:`RsyncServer` while the block runs."""
    server = RsyncServer(workdir, modules, host, settings)
    try:
        server.start()
        yield server
    finally:
        server.stop()
