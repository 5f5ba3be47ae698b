"""The two roles of an upgrade: the old process (:class:`Upgrader`) and its :class:`Successor`."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from attrs import define, field
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from mirrorbits.listen import AdoptedListener
from mirrorbits.logs import Logger
from mirrorbits.reactors import IDaemonReactor
from mirrorbits.upgrade.handover import (
    Inheritance,
    UpgradeError,
    listener_name,
    parent_gone,
    remove_pid_file,
    share_log_file,
    spawn_successor,
    twistd_successor_command,
    write_pid_file,
)
from mirrorbits.upgrade.listening import POLL_INTERVAL

QUIT_DELAY = 0.1  # seconds between the successor's first accept and its SIGQUIT to the parent
DRAIN_TIMEOUT = 5.0  # seconds open HTTP connections get before the old process stops
IDLE_GRACE = 1.0  # seconds a connection may stay silent during the drain before it is closed

log = Logger()


class HttpSide(Protocol):
    """What serves HTTP in the old process: a :class:`HeldListener`, or the worker
    processes (:class:`mirrorbits.workers.WorkerPool`); also what serves the metrics (a
    :class:`HeldListener`)."""

    def fileno(self) -> int:
        """The listening socket to hand to the successor."""
        ...

    async def hand_over(self, clock: IReactorTime, timeout: float, idle_grace: float) -> int:
        """Stop accepting, let open connections finish; how many were left after
        ``timeout``."""
        ...


@define(eq=False)
class Upgrader:
    """The old process' side: spawn the successor, then quit when it asks."""

    reactor: IDaemonReactor
    http: HttpSide
    control: AdoptedListener
    argv: list[str]
    cwd: str
    executable: str
    inherited: Inheritance | None = None
    monitors: list[IService] = field(factory=list)
    refusal: str | None = None  # why this process cannot upgrade, if it cannot
    env: Callable[[], Mapping[str, str]] = lambda: os.environ
    # Passed to the successor like the HTTP socket: both processes answer scrapes meanwhile.
    metrics: HttpSide | None = None
    # Raises UpgradeError when the successor would refuse to start (its configuration file).
    preflight: Callable[[], None] = lambda: None
    _busy: bool = False
    _quitting: bool = False
    _child: subprocess.Popen[bytes] | None = None
    _watch: LoopingCall | None = None

    async def upgrade(self) -> int:
        """Spawn the successor; its pid. Raises :class:`UpgradeError` (still serving)."""
        if self._quitting:
            raise UpgradeError("this process is already quitting")
        if self._busy:
            raise UpgradeError("an upgrade is already in progress")
        if self.refusal:
            raise UpgradeError(self.refusal)
        self.preflight()  # a child that exits at once would only say its exit status
        self._busy = True
        try:
            await maybeDeferred(self.control.stopService)
            share_log_file(self.argv, self.cwd)
            command, pidfile = twistd_successor_command(self.executable, self.argv)
            if self.inherited is not None:  # we run with --pidfile=; the real one is here
                pidfile = self.inherited.pidfile
            if pidfile:
                pidfile = os.path.join(self.cwd, pidfile)
            fd = self.http.fileno()
            metrics_fd = self.metrics.fileno() if self.metrics is not None else None
            child = spawn_successor(command, self.cwd, self.env(), fd, listener_name(fd), pidfile,
                                    metrics_fd)
        except Exception as err:
            self._restore()
            if isinstance(err, UpgradeError):
                raise
            raise UpgradeError(f"cannot start the new process: {err}") from None
        log.info("Spawned child {pid}", pid=child.pid)
        self._child = child
        self._watch = LoopingCall(self._check_child)
        self._watch.clock = self.reactor
        self._watch.start(0.2, now=False)
        return child.pid

    def upgrade_from_signal(self) -> None:
        log.info("SIGUSR2 Received: Seamless binary upgrade...")

        def failed(failure: Failure) -> None:
            if failure.check(UpgradeError):
                log.error("Upgrade failed: {error}", error=str(failure.value))
            else:
                log.failure("Upgrade failed", failure)

        Deferred.fromCoroutine(self.upgrade()).addErrback(failed)

    def _check_child(self) -> None:
        child = self._child
        if child is None or self._quitting:
            self._stop_watch()
            return
        status = child.poll()
        if status is None:
            return
        self._stop_watch()
        if status == 0:  # a daemonizing twistd exits 0 once its worker runs
            return
        log.error("The new process exited with status {status}: upgrade aborted, still serving",
                  status=status)
        self._child = None
        self._restore()

    def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None and watch.running:
            watch.stop()

    def _restore(self) -> None:
        """Serve the control channel again after a failed upgrade."""
        self._busy = False
        if self._quitting or self.control.running:
            return
        try:
            self.control.startService()
        except Exception as err:
            log.critical("Cannot listen for control connections again: {error}",
                         error=str(err))

    def quit_from_signal(self) -> None:
        if self._quitting:
            return
        log.info("SIGQUIT Received: handing over to the new process")
        self._quitting = True
        self._stop_watch()
        Deferred.fromCoroutine(self._quit()).addErrback(
            lambda failure: log.failure("Quitting failed", failure)).addBoth(
            lambda _: self._stop_reactor())

    async def _quit(self) -> None:
        for monitor in self.monitors:
            if monitor.parent is not None:
                await maybeDeferred(monitor.disownServiceParent)
        metrics: Deferred[int] | None = None
        if self.metrics is not None:  # its scrapes end meanwhile
            metrics = Deferred.fromCoroutine(
                self.metrics.hand_over(self.reactor, DRAIN_TIMEOUT, IDLE_GRACE))
        left = await self.http.hand_over(self.reactor, DRAIN_TIMEOUT, IDLE_GRACE)
        if left:
            log.warn("Closing {count} HTTP connections still open", count=left)
        if metrics is not None:
            await metrics

    def _stop_reactor(self) -> None:
        with contextlib.suppress(Exception):
            self.reactor.stop()


@define(eq=False)
class Successor(Service):
    """The new process' side: ask the parent to quit, then take over its pid file."""

    reactor: IDaemonReactor
    inherited: Inheritance
    argv: list[str]
    cwd: str
    _direct_child: bool = False
    _asked: IDelayedCall | None = None
    _watch: LoopingCall | None = None
    _wrote_pid: int | None = None

    def startService(self) -> None:
        super().startService()
        share_log_file(self.argv, self.cwd)
        self._direct_child = os.getppid() == self.inherited.ppid

    def serving(self) -> None:
        """The HTTP listener accepts: the parent may go."""
        if self.running and self._asked is None and self._watch is None:
            self._asked = self.reactor.callLater(QUIT_DELAY, self._ask_parent)

    def _ask_parent(self) -> None:
        self._asked = None
        log.info("Asking parent to quit")
        try:
            os.kill(self.inherited.ppid, signal.SIGQUIT)
        except OSError as err:
            if err.errno != errno.ESRCH:
                log.error("Cannot signal the parent: {error}", error=str(err))
        if self.inherited.pidfile:
            self._watch = LoopingCall(self._check_parent)
            self._watch.clock = self.reactor
            self._watch.start(POLL_INTERVAL, now=True)

    def _check_parent(self) -> None:
        if not parent_gone(self.inherited.ppid, self._direct_child):
            return
        self._stop_watch()
        path = self.inherited.pidfile
        assert path is not None
        try:
            write_pid_file(path, os.getpid())
        except OSError as err:
            log.error("Cannot write the pid file {path}: {error}", path=path, error=str(err))
            return
        self._wrote_pid = os.getpid()

    def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None and watch.running:
            watch.stop()

    def stopService(self) -> None:
        super().stopService()
        if self._asked is not None and self._asked.active():
            self._asked.cancel()
        self._asked = None
        self._stop_watch()
        if self._wrote_pid is not None and self.inherited.pidfile:
            remove_pid_file(self.inherited.pidfile, self._wrote_pid)


def upgrade_hook(upgrader: Upgrader) -> Callable[[], Awaitable[None]]:
    """The control channel's ``upgrade`` command."""

    async def upgrade() -> None:
        await upgrader.upgrade()

    return upgrade
