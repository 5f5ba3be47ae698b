"""A private ``redis-server`` supervised by the daemon, for the zero-configuration start.

Used only when the configured Redis address is on loopback and nothing answers
there at start-up: the data lives under a local directory, so downloads counted
and mirrors added survive a restart.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from mirrorbits.logs import Logger

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (a blocking probe)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_arguments(binary: str, host: str, port: int, data_dir: str) -> list[str]:
    """The command line of the private server: loopback only, snapshots in ``data_dir``."""
    return [
        binary, "--bind", host, "--port", str(port), "--dir", data_dir,
        "--save", "60 1", "--appendonly", "no", "--daemonize", "no",
        "--protected-mode", "yes", "--logfile", "",
    ]


class _RedisProcess(ProcessProtocol):
    def __init__(self, owner: EmbeddedRedis) -> None:
        self.owner = owner
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.owner.process_ended(self, reason)
        self.ended.callback(None)


@define(eq=False)
class EmbeddedRedis(Service):
    """Runs ``redis-server`` on ``host:port`` and restarts it if it dies."""

    host: str
    port: int
    data_dir: str
    reactor: Any  # IReactorProcess & IReactorTime
    restart_delay: float = 1.0
    _process: _RedisProcess | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)
    log = Logger()

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._spawn()

    def _spawn(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            self.log.error("redis-server is not installed: cannot start the private Redis")
            return
        os.makedirs(self.data_dir, exist_ok=True)
        proto = _RedisProcess(self)
        reactor: IReactorProcess = self.reactor
        reactor.spawnProcess(
            proto, binary, redis_arguments(binary, self.host, self.port, self.data_dir),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, path=self.data_dir,
        )
        self._process = proto
        self.log.info(
            "Started a private redis-server on {host}:{port} (data in {dir})",
            host=self.host, port=self.port, dir=self.data_dir,
        )

    def process_ended(self, proto: _RedisProcess, reason: Failure) -> None:
        if proto is self._process:
            self._process = None
        if self._stopping:
            return
        if not reason.check(ProcessDone):
            self.log.warn("The private redis-server stopped: {reason}", reason=reason.value)
        clock: IReactorTime = self.reactor
        clock.callLater(self.restart_delay, self._respawn)

    def _respawn(self) -> None:
        if not self._stopping and self._process is None:
            self._spawn()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self._stopping = True
        proto = self._process
        if proto is None or proto.transport is None:
            return None
        try:
            proto.transport.signalProcess("TERM")
        except Exception:
            return None
        return proto.ended
