"""The private ``redis-server`` of the embedded configuration (``--repository`` alone).

Without a configuration file and without ``--redis-address``, the daemon never touches a
Redis it did not start: it runs its own ``redis-server`` on 127.0.0.1, on a port chosen once
and recorded under the data directory (``<data-dir>/redis/port``), with its append-only file
(:mod:`mirrorbits.embedded_aof`), snapshot (``dump.rdb``) and pid file there. A restart from
the same directory finds the same port and the same data; a private server left running by
an earlier process (killed without its children) is used as it is rather than started twice
on one data directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import sys
from collections import deque

from attrs import define, field, frozen
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from mirrorbits.embedded_aof import (
    APPEND_FILE,
    POLL_INTERVAL,
    NotReady,
    has_append_only_file,
)
from mirrorbits.logs import Logger
from mirrorbits.reactors import IScanReactor

HOST = "127.0.0.1"
PORT_FILE = "port"
PID_FILE = "redis.pid"
RESTART_DELAY = 1.0  # seconds before the first restart of a server that stopped
MAX_RESTART_DELAY = 30.0  # the delay doubles while the server keeps failing at start
STABLE_AFTER = 10.0  # seconds of life after which a server's next failure restarts at once
OUTPUT_LINES = 5  # last lines of the server's output kept to explain an exit
STOP_TIMEOUT = 20.0  # seconds the server has to save its data and exit at stop


class PrivateRedisError(Exception):
    """The private server cannot be planned (no redis-server, unusable data directory)."""


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (a blocking probe)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@frozen
class PrivateRedis:
    """Where the private server listens and keeps its data.

    ``running_pid``: a private server of an earlier process still serving this directory
    (used as it is, not supervised), else None (this process starts and supervises one).
    """

    port: int
    directory: str
    running_pid: int | None = None
    host: str = HOST

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> str:
        """One line for the log and the ``/`` page."""
        where = f"on {self.address}, data in {self.directory}"
        if self.running_pid is not None:
            return (f"a private redis-server already running {where} (pid {self.running_pid},"
                    " left by an earlier process: not supervised by this one)")
        return f"a private redis-server {where}"


def plan_private_redis(data_dir: str) -> PrivateRedis:
    """Choose the private server's port (the recorded one if still usable) and record it.

    Blocking (file system and loopback probes): for start-up, before the reactor runs.
    Raises :class:`PrivateRedisError` with a one-line reason.
    """
    directory = os.path.join(os.path.abspath(data_dir), "redis")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as err:
        raise PrivateRedisError(
            f"cannot create the data directory {directory}: {err.strerror or err}") from None
    recorded = _recorded_port(directory)
    pid = _running_server(directory)
    if pid is not None and recorded is not None and answers(HOST, recorded):
        return PrivateRedis(recorded, directory, running_pid=pid)
    if shutil.which("redis-server") is None:
        raise PrivateRedisError(
            "redis-server is not installed (apt-get install redis-server), or pass "
            "--redis-address HOST:PORT to use a running Redis")
    port = recorded if recorded is not None and _bindable(HOST, recorded) else _free_port(HOST)
    if port != recorded:
        try:
            with open(os.path.join(directory, PORT_FILE), "w") as stream:
                stream.write(f"{port}\n")
        except OSError as err:
            raise PrivateRedisError(
                f"cannot write {os.path.join(directory, PORT_FILE)}: "
                f"{err.strerror or err}") from None
    return PrivateRedis(port, directory)


def _recorded_port(directory: str) -> int | None:
    try:
        with open(os.path.join(directory, PORT_FILE)) as stream:
            text = stream.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def _running_server(directory: str) -> int | None:
    """The pid of a live redis-server named by the directory's pid file, if any."""
    try:
        with open(os.path.join(directory, PID_FILE)) as stream:
            text = stream.read(32).strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, under another user
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            if b"redis-server" not in stream.read(4096):
                return None  # a recycled pid
    except OSError:
        pass  # no /proc: trust the signal test
    return pid


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


_LOG_PREFIX = re.compile(r"^\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ ([.*#-]) ")


def explain(output: list[str]) -> str:
    """What a redis-server's last lines say about its exit, without pid and time: its last
    two warnings (``#``), else its last line."""
    messages = []
    for line in output:
        match = _LOG_PREFIX.match(line)
        messages.append((match.group(1) if match else "", line[match.end():] if match else line))
    warnings = [text for level, text in messages if level == "#"]
    if warnings:
        return " ".join(warnings[-2:])
    return messages[-1][1] if messages else ""


# Runs the rest of its command line in a process group of its own: a Ctrl-C in the terminal
# reaches the daemon only, which stops the server last (after the statistics' last flush).
_OWN_PROCESS_GROUP = "import os, sys; os.setpgid(0, 0); os.execv(sys.argv[1], sys.argv[1:])"


def redis_arguments(binary: str, host: str, port: int, data_dir: str,
                    append_only: bool) -> list[str]:
    """The command line of the private server: loopback only, data in ``data_dir``, in its
    own process group.

    ``append_only``: whether it starts with its append-only file (only when ``data_dir``
    has one: see :mod:`mirrorbits.embedded_aof`). The snapshots go on beside it: an older
    version of this daemon, which loads ``dump.rdb`` only, finds recent data there.
    """
    return [
        sys.executable, "-c", _OWN_PROCESS_GROUP,
        binary, "--bind", host, "--port", str(port), "--dir", data_dir,
        "--pidfile", os.path.join(data_dir, PID_FILE), "--save", "60 1",
        "--appendonly", "yes" if append_only else "no", "--appendfsync", "everysec",
        "--appendfilename", APPEND_FILE, "--daemonize", "no",
        "--protected-mode", "yes", "--logfile", "",
    ]


def lost_to_a_kill(data_dir: str) -> str:
    """What a kill of the private server loses, by what its restart will load."""
    if has_append_only_file(data_dir):
        return "changes of its last second at most are lost"
    return "changes since its last snapshot (at most a minute) are lost"


class _RedisProcess(ProcessProtocol):
    def __init__(self, owner: EmbeddedRedis) -> None:
        self.owner = owner
        self.ended: Deferred[None] = Deferred()
        self.output: deque[str] = deque(maxlen=OUTPUT_LINES)
        self._partial = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-4096:]
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self.output.append(text)

    def processEnded(self, reason: Failure) -> None:
        self.owner.process_ended(self, reason)
        self.ended.callback(None)


@define(eq=False)
class EmbeddedRedis(Service):
    """Runs ``redis-server`` on ``host:port`` and restarts it if it dies.

    A server started without its append-only file (none yet in ``data_dir``) is told to
    start one once it answers. A server that keeps failing is restarted less and less often
    (up to every :data:`MAX_RESTART_DELAY` seconds), and the same failure is logged once.
    """

    host: str
    port: int
    data_dir: str
    reactor: IScanReactor
    restart_delay: float = RESTART_DELAY
    stop_timeout: float = STOP_TIMEOUT
    _process: _RedisProcess | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)
    _delay: float = field(default=0.0, init=False)
    _started_at: float = field(default=0.0, init=False)
    _last_failure: str = field(default="", init=False)
    _switching: Deferred[None] | None = field(default=None, init=False)
    log = Logger()

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._delay = self.restart_delay
        self._spawn()

    def _spawn(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            self.log.error("redis-server is not installed: cannot start the private Redis")
            return
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        proto = _RedisProcess(self)
        reactor: IReactorProcess = self.reactor
        append_only = has_append_only_file(self.data_dir)
        arguments = redis_arguments(binary, self.host, self.port, self.data_dir, append_only)
        transport = reactor.spawnProcess(
            proto, arguments[0], arguments,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, path=self.data_dir,
        )
        self._process = proto
        clock: IReactorTime = self.reactor
        self._started_at = clock.seconds()
        self.log.debug("Started redis-server on {host}:{port} (data in {dir})",
                       host=self.host, port=self.port, dir=self.data_dir)
        if not append_only and transport.pid is not None:
            self._switching = ensureDeferred(self._start_append_only(proto, transport.pid))

    async def _start_append_only(self, proto: _RedisProcess, pid: int) -> None:
        """Turn the append-only file on once the server started without it answers."""
        # Imported here: the Redis client imports twisted.internet.endpoints, which takes
        # systemd's LISTEN_FDS out of the environment, and this module is imported before
        # mirrorbits.tap reads them.
        from mirrorbits.store.appendonly import turn_on_append_only
        from mirrorbits.store.connection import describe

        clock: IReactorTime = self.reactor
        while proto is self._process and not self._stopping:
            try:
                if await turn_on_append_only(self.reactor, self.host, self.port, pid):
                    self.log.debug("The private redis-server writes its append-only file")
                return
            except NotReady:
                pass
            except CancelledError:
                return
            except Exception as err:
                if proto is self._process and not self._stopping:
                    self.log.warn(
                        "The private redis-server could not start its append-only file ({why}):"
                        " if it is killed, changes since its last snapshot (at most a minute)"
                        " are lost", why=describe(err))
                return
            try:
                await deferLater(clock, POLL_INTERVAL, lambda: None)
            except CancelledError:
                return

    def process_ended(self, proto: _RedisProcess, reason: Failure) -> None:
        if proto is self._process:
            self._process = None
        if self._stopping:
            return
        clock: IReactorTime = self.reactor
        if clock.seconds() - self._started_at >= STABLE_AFTER:
            self._delay = self.restart_delay  # it ran: a new failure, not the same one
            self._last_failure = ""
        code = getattr(reason.value, "exitCode", None)
        killed_by = getattr(reason.value, "signal", None)
        if killed_by is not None and not reason.check(ProcessDone):
            # Killed: its last line is whatever it was doing ("Ready to accept connections")
            failure = (f"The private redis-server was killed (signal {killed_by}): "
                       f"{lost_to_a_kill(self.data_dir)}")
        else:
            status = "" if reason.check(ProcessDone) or code is None else f" (exit code {code})"
            detail = explain(list(proto.output))
            failure = f"The private redis-server stopped{status}" + (
                f": {detail}" if detail else "")
        if failure != self._last_failure:
            self.log.warn("{failure}; restarting it in {delay:g} s", failure=failure,
                          delay=self._delay)
            self._last_failure = failure
        clock.callLater(self._delay, self._respawn)
        self._delay = min(self._delay * 2, MAX_RESTART_DELAY)

    def _respawn(self) -> None:
        if not self._stopping and self._process is None:
            self._spawn()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self._stopping = True
        if self._switching is not None:
            self._switching.cancel()
            self._switching = None
        proto = self._process
        if proto is None or proto.transport is None:
            return None
        try:
            proto.transport.signalProcess("TERM")
        except Exception:
            return None
        clock: IReactorTime = self.reactor
        # A server that cannot write its snapshot (disk full, directory removed) refuses to
        # exit: the daemon must not wait for it forever.
        overdue = clock.callLater(self.stop_timeout, self._kill, proto)
        proto.ended.addBoth(lambda result: overdue.cancel() if overdue.active() else None)
        return proto.ended

    def _kill(self, proto: _RedisProcess) -> None:
        detail = explain(list(proto.output))
        self.log.warn("The private redis-server did not stop within {timeout:g} s{detail}: "
                      "killing it; {lost}", timeout=self.stop_timeout,
                      detail=f" ({detail})" if detail else "", lost=lost_to_a_kill(self.data_dir))
        if proto.transport is not None:
            with contextlib.suppress(Exception):
                proto.transport.signalProcess("KILL")
