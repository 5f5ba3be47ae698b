"""The daemon's side: start the worker processes, restart any that dies, signal and stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure

from mirrorbits.listen import AdoptedListener
from mirrorbits.logs import Logger
from mirrorbits.metrics.merge import CountsReport, ProcessTotals, decode
from mirrorbits.reactors import IProcessReactor
from mirrorbits.systemd.notify import ENVIRONMENT as NOTIFY_ENVIRONMENT
from mirrorbits.upgrade.handover import (
    ENV_FD,
    ENV_METRICS_FD,
    ENV_NAME,
    ENV_NODE_ID,
    ENV_PIDFILE,
    ENV_PPID,
)
from mirrorbits.upgrade.process import DRAIN_TIMEOUT
from mirrorbits.workers.echo import ECHO_HOLD, DaemonEchoes
from mirrorbits.workers.wire import (
    ASK_COUNTS,
    CANNOT_START,
    COMMAND_FD,
    DAEMON_PID_ENV,
    LISTEN_FD,
    REPORT_FD,
    SERVING,
    WORKER_MODULE,
    parse_worker_line,
)

RESTART_DELAY = 0.5  # seconds before a worker that died is replaced
MAX_RESTART_DELAY = 5.0  # the delay doubles while workers die young, up to this
STABLE_AFTER = 10.0  # seconds after which a worker that dies was not dying young
STOP_GRACE = 5.0  # seconds a worker gets beyond its drain before SIGKILL
COUNTS_TIMEOUT = 1.0  # seconds a metrics scrape waits for a worker's counts
# What a worker must not inherit: it is neither an upgrade's successor nor systemd's service.
_NOT_INHERITED = (ENV_FD, ENV_NAME, ENV_PPID, ENV_PIDFILE, ENV_METRICS_FD, ENV_NODE_ID,
                  NOTIFY_ENVIRONMENT,
                  "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")

log = Logger()


def worker_environment(env: Mapping[str, str], daemon: int | None = None) -> dict[str, str]:
    """The daemon's environment without what concerns the daemon alone, and ``daemon``'s
    pid (:data:`~mirrorbits.workers.wire.DAEMON_PID_ENV`) when given."""
    kept = {key: value for key, value in env.items()
            if key not in _NOT_INHERITED and key != DAEMON_PID_ENV}
    if daemon is not None:
        kept[DAEMON_PID_ENV] = str(daemon)
    return kept


def describe_end(reason: Failure) -> str:
    """How a worker ended, for the log."""
    signum = getattr(reason.value, "signal", None)
    if signum:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(signum).name}"
        return f"was killed by signal {signum}"
    return f"exited with status {getattr(reason.value, 'exitCode', None)}"


class _Worker(ProcessProtocol):
    """One worker process, as the daemon sees it."""

    def __init__(self, pool: WorkerPool, slot: int, started: float) -> None:
        self.pool = pool
        self.slot = slot
        self.started = started
        self.pid: int | None = None
        self.serving = False
        self.failed_as_before = False  # could not start, for the reason said last time
        self._partial: dict[int, bytes] = {}
        self._asked: list[Deferred[None]] = []

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.pid = self.transport.pid

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        lines = (self._partial.pop(childFD, b"") + data).split(b"\n")
        if lines[-1]:
            self._partial[childFD] = lines[-1]
        for line in lines[:-1]:
            if childFD == REPORT_FD:
                self._reported(line)
            else:
                self.pool.worker_said(self, line.decode("utf-8", "replace"))

    def _reported(self, line: bytes) -> None:
        if line + b"\n" == SERVING:
            if not self.serving:
                self.serving = True
                self.pool.worker_serving(self)
            return
        report = decode(line)
        if report is not None and self.pid is not None:
            self.pool.totals.reported(self.pid, report)
            self._answered()

    def ask_counts(self, clock: IReactorTime) -> Deferred[None]:
        """Ask for the worker's counts; fires once they came (or after a second)."""
        asked: Deferred[None] = Deferred()
        self._asked.append(asked)
        if len(self._asked) == 1 and self.transport is not None:
            with contextlib.suppress(OSError):
                self.transport.writeToChild(COMMAND_FD, ASK_COUNTS)
        asked.addTimeout(COUNTS_TIMEOUT, clock)
        return asked.addErrback(lambda _: None)

    def _answered(self) -> None:
        asked, self._asked = self._asked, []
        for waiting in asked:
            if not waiting.called:
                waiting.callback(None)

    def processEnded(self, reason: Failure) -> None:
        rest = self._partial.pop(REPORT_FD, None)
        if rest:
            self._reported(rest)
        for part in self._partial.values():
            self.pool.worker_said(self, part.decode("utf-8", "replace"))
        self._partial.clear()
        self._answered()
        if self.pid is not None:
            self.pool.totals.worker_ended(self.pid)
        self.pool.worker_ended(self, reason)

    def signal(self, signum: int) -> None:
        if self.transport is not None:
            with contextlib.suppress(ProcessExitedAlready, OSError):
                self.transport.signalProcess(signum)


@define(eq=False)
class WorkerPool(Service):
    """``count`` worker processes serving HTTP on ``listener``'s socket (which this process
    binds, or inherits, and never accepts on), kept at that number.

    ``arguments`` follow ``python -m mirrorbits.workers``; ``on_serving`` is called once,
    when the first ``count`` workers all serve.
    """

    listener: AdoptedListener
    count: int
    reactor: IProcessReactor
    arguments: list[str]
    cwd: str
    env: Callable[[], Mapping[str, str]] = lambda: os.environ
    executable: str = sys.executable
    on_serving: Callable[[], None] | None = None
    #: Command lines each new worker is told first (what the daemon's state is now).
    greeting: Callable[[], list[bytes]] = lambda: []
    _workers: dict[int, _Worker] = field(factory=dict)
    _restarts: dict[int, IDelayedCall] = field(factory=dict)
    _delays: dict[int, float] = field(factory=dict)
    _stopping: bool = False
    _announced: bool = False
    _handed_over: bool = False
    totals: ProcessTotals = field(factory=ProcessTotals)  # the workers' request counts
    _echoes: DaemonEchoes | None = None
    # lines about Redis waiting ECHO_HOLD for the daemon to say them: call, pid, level, text
    _held: dict[int, tuple[IDelayedCall, int | None, LogLevel, str]] = field(factory=dict)
    _next_held: int = 0
    _start_failure: str = ""  # why the last worker could not start, said once

    def bind(self) -> None:
        """Create (or take) the listening socket now; ListenAddressError."""
        self.listener.bind()

    def fileno(self) -> int:
        return self.listener.fileno()

    def describe(self) -> str:
        return f"{self.listener.describe()} ({self.count} worker processes)"

    def pids(self) -> list[int]:
        """The running workers' pids."""
        return [worker.pid for worker in self._workers.values() if worker.pid is not None]

    def privilegedStartService(self) -> None:
        self.bind()
        super().privilegedStartService()

    def startService(self) -> None:
        self.bind()
        super().startService()
        self._echoes = DaemonEchoes(self.reactor)
        globalLogPublisher.addObserver(self._echoes)
        for slot in range(self.count):
            self._spawn(slot)

    async def counts(self) -> CountsReport:
        """The request counts of every worker this process started, and the serving
        workers' cache sizes (each serving worker is asked, for at most a second)."""
        asked = [worker.ask_counts(self.reactor) for worker in list(self._workers.values())
                 if worker.serving]
        for answer in asked:
            await answer
        return self.totals.total()

    def tell_all(self, line: bytes) -> None:
        """Write ``line`` on every running worker's command pipe."""
        for worker in list(self._workers.values()):
            if worker.transport is not None:
                with contextlib.suppress(OSError):
                    worker.transport.writeToChild(COMMAND_FD, line)

    def signal_all(self, signum: int) -> None:
        """Send ``signum`` to every running worker (SIGHUP: reload, SIGUSR1: reopen logs)."""
        for worker in list(self._workers.values()):
            worker.signal(signum)

    def _spawn(self, slot: int) -> None:
        self._restarts.pop(slot, None)
        if self._stopping or not self.running:
            return
        worker = _Worker(self, slot, self.reactor.seconds())
        command = [self.executable, "-m", WORKER_MODULE, *self.arguments]
        null = os.open(os.devnull, os.O_RDONLY)
        self._workers[slot] = worker
        try:
            self.reactor.spawnProcess(
                worker, self.executable, command,
                env=worker_environment(self.env(), os.getpid()),
                path=self.cwd,
                childFDs={0: null, 1: "r", 2: "r", LISTEN_FD: self.listener.fileno(),
                          REPORT_FD: "r", COMMAND_FD: "w"})
        except Exception as err:
            del self._workers[slot]
            log.error("Cannot start an HTTP worker: {error}", error=str(err))
            self._restart_later(slot, young=True)
        else:
            for line in self.greeting():
                if worker.transport is not None:
                    with contextlib.suppress(OSError):
                        worker.transport.writeToChild(COMMAND_FD, line)
        finally:
            os.close(null)

    def worker_serving(self, worker: _Worker) -> None:
        self._start_failure = ""  # a later failure is news again
        if self._announced:
            log.info("HTTP worker {pid} serves", pid=worker.pid)
            return
        serving = [w for w in self._workers.values() if w.serving]
        if len(serving) < self.count:
            return
        self._announced = True
        log.info("HTTP served by {count} worker processes (pids {pids})", count=self.count,
                 pids=" ".join(str(pid) for pid in self.pids()))
        if self.on_serving is not None:
            self.on_serving()

    def worker_said(self, worker: _Worker, line: str) -> None:
        level, shared, text = parse_worker_line(line)
        if text.startswith(CANNOT_START) and not worker.serving:
            if text == self._start_failure:  # each replacement would say it again
                worker.failed_as_before = True
                level = LogLevel.debug
            self._start_failure = text
        if shared and self._echoes is not None:
            if worker.serving and not self._echoes.repeats(text):
                # an event the daemon may say in a moment (a starting worker's own connection
                # is said at once, in order)
                self._next_held += 1
                key = self._next_held
                call = self.reactor.callLater(ECHO_HOLD, self._relay_held, key)
                self._held[key] = (call, worker.pid, level, text)
                return
            self._relay(worker.pid, level, text)
            return
        log.emit(level, "worker {pid}: {text}", pid=worker.pid, text=text)

    def _relay_held(self, key: int) -> None:
        _, pid, level, text = self._held.pop(key)
        self._relay(pid, level, text)

    def _relay(self, pid: int | None, level: LogLevel, text: str) -> None:
        if self._echoes is not None:
            if self._echoes.repeats(text):
                level = LogLevel.debug
            else:
                self._echoes.said(text)
        log.emit(level, "worker {pid}: {text}", pid=pid, text=text)

    def worker_ended(self, worker: _Worker, reason: Failure) -> None:
        if self._workers.get(worker.slot) is worker:
            del self._workers[worker.slot]
        if self._stopping or not self.running:
            return
        young = self.reactor.seconds() - worker.started < STABLE_AFTER
        delay = self._restart_later(worker.slot, young=young)
        again = worker.failed_as_before and not worker.serving
        log.emit(LogLevel.debug if again else LogLevel.warn,
                 "HTTP worker {pid} {how}: starting another in {delay} s", pid=worker.pid,
                 how=describe_end(reason), delay=delay)

    def _restart_later(self, slot: int, *, young: bool) -> float:
        previous = self._delays.get(slot)
        delay = min(previous * 2, MAX_RESTART_DELAY) if young and previous else RESTART_DELAY
        self._delays[slot] = delay
        self._restarts[slot] = self.reactor.callLater(delay, self._spawn, slot)
        return delay

    async def hand_over(self, clock: IReactorTime, timeout: float, idle_grace: float) -> int:
        """Stop every worker (each drains its connections for up to ``timeout``); how many
        had to be killed. The successor's workers serve on the same socket meanwhile."""
        self._handed_over = True
        return await self._stop_workers(clock, timeout + STOP_GRACE)

    async def _stop_workers(self, clock: IReactorTime, timeout: float) -> int:
        self._stopping = True
        for pending in self._restarts.values():
            if pending.active():
                pending.cancel()
        self._restarts.clear()
        self.signal_all(signal.SIGTERM)
        deadline = clock.seconds() + timeout
        while self._workers and clock.seconds() < deadline:
            await deferLater(clock, 0.05, lambda: None)
        killed = len(self._workers)
        if killed:
            log.warn("Killing {count} HTTP worker(s) still running", count=killed)
            self.signal_all(signal.SIGKILL)
            while self._workers and clock.seconds() < deadline + 2:
                await deferLater(clock, 0.05, lambda: None)
        return killed

    def stopService(self) -> Deferred[None]:
        super().stopService()
        for key in sorted(self._held):  # said now rather than never
            call, pid, level, text = self._held.pop(key)
            if call.active():
                call.cancel()
            self._relay(pid, level, text)
        if self._echoes is not None:
            globalLogPublisher.removeObserver(self._echoes)

        async def stop() -> None:
            await self._stop_workers(self.reactor, DRAIN_TIMEOUT + STOP_GRACE)
            # A UNIX socket's file goes with the last process serving it: not after a
            # hand-over (the successor serves it), nor when systemd owns it.
            path = self.listener.socket_file()
            self.listener.stopService()
            if path is not None and not self._handed_over and not self.listener.foreign:
                with contextlib.suppress(OSError):
                    os.unlink(path)

        return Deferred.fromCoroutine(stop())
