"""The worker's side: ``python -m mirrorbits.workers [--config FILE] [--repository DIR]
[--debug]``, started by the daemon with the listening socket at :data:`LISTEN_FD`."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, BinaryIO, cast

from attrs import define
from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.stdio import StandardIO
from twisted.internet.task import LoopingCall
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogBeginner
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python import usage

from mirrorbits.config import ConfigError
from mirrorbits.logs import Logger
from mirrorbits.metrics.merge import CountsReport, encode, report_of
from mirrorbits.reactors import IDaemonReactor, default_reactor
from mirrorbits.upgrade import DRAIN_TIMEOUT, IDLE_GRACE, HeldListener
from mirrorbits.workers.echo import ECHOED_NAMESPACES
from mirrorbits.workers.wire import (
    ASK_COUNTS,
    COMMAND_FD,
    HELD_DOWN,
    LISTEN_FD,
    REPORT_FD,
    SERVING,
    cannot_start,
    daemon_pid,
    log_line,
    parse_changing,
)

PARENT_CHECK_INTERVAL = 1.0  # seconds between two looks at whether the daemon still runs
#: Twisted's line for a listening port closed (``log.msg``, namespace ``log_legacy``).
_PORT_CLOSED = re.compile(r"\((?:TCP |UNIX |UDP )?Port .* Closed\)")

log = Logger()


def stop_line(event: LogEvent, text: str) -> bool:
    """Whether ``event`` is one of Twisted's lines of a process that stops (its listening
    port closed, its main loop ended): said by each worker, they told nothing the daemon's
    own lines do not (``SIGQUIT Received: handing over to the new process``, its own stop)."""
    namespace = event.get("log_namespace")
    return ((namespace == "twisted.internet.base" and text == "Main loop terminated.")
            or (namespace == "log_legacy" and _PORT_CLOSED.fullmatch(text) is not None))


def log_observer(stream: BinaryIO) -> ILogObserver:
    """Write each event as :func:`log_line` lines (a failure with its traceback); the
    worker's :func:`stop_line` at debug level."""

    def observe(event: LogEvent) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}"
        level = event.get("log_level", LogLevel.info)
        if stop_line(event, text):
            level = LogLevel.debug
        lines = text.splitlines() or [""]
        # one line about Redis (never a traceback, whose lines must all be seen)
        shared = len(lines) == 1 and str(event.get("log_namespace", "")).startswith(
            ECHOED_NAMESPACES)
        with contextlib.suppress(OSError, ValueError):  # the daemon is gone: nobody reads
            stream.write("".join(log_line(level, line, shared) for line in lines).encode(
                "utf-8", "backslashreplace"))
            stream.flush()

    return cast(ILogObserver, observe)


def report_serving() -> None:
    """Tell the daemon that this worker accepts connections."""
    with contextlib.suppress(OSError):
        os.write(REPORT_FD, SERVING)


class CountsAnswers(LineOnlyReceiver):
    """Answers the daemon's :data:`ASK_COUNTS` (on :data:`COMMAND_FD`) with this worker's
    counts (on :data:`REPORT_FD`), for the metrics."""

    delimiter = b"\n"

    def __init__(self, counts: Callable[[], CountsReport],
                 changing: Callable[[str, Any], None] | None = None) -> None:
        self.counts = counts
        self.changing = changing

    def lineReceived(self, line: bytes) -> None:
        if line + b"\n" == ASK_COUNTS and self.transport is not None:
            self.transport.write(encode(self.counts()))
            return
        told = parse_changing(line)
        if told is not None and self.changing is not None:
            self.changing(*told)


def report_counts(counts: CountsReport) -> None:
    """Send the daemon this worker's last counts (as it stops)."""
    with contextlib.suppress(OSError):
        os.write(REPORT_FD, encode(counts))


@define(eq=False)
class WorkerRun:
    """The running worker: started, stopped on SIGTERM/SIGINT (after a drain) or when the
    daemon that started it is gone."""

    reactor: IDaemonReactor
    service: IService  # the worker's Daemon
    http: HeldListener
    parent: int
    counts: Callable[[], CountsReport] | None = None  # this worker's, for the metrics
    changing: Callable[[str, Any], None] | None = None  # follows the daemon's watch
    _quitting: bool = False
    _watch: LoopingCall | None = None

    def start(self) -> None:
        service = self.service
        self.reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
        service.privilegedStartService()
        service.startService()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        # The daemon's upgrade signals, which ``systemctl kill`` sends every process of the
        # unit unless told --kill-whom=main: the daemon's to act upon, not a worker's.
        for signum in (signal.SIGUSR2, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_IGN)
        if self.counts is not None:
            # POSIX StandardIO (its stubs are the Windows one's, without stdin/stdout)
            cast(Any, StandardIO)(CountsAnswers(self.counts, self.changing), stdin=COMMAND_FD,
                                  stdout=REPORT_FD, reactor=self.reactor)
        self._watch = LoopingCall(self._check_parent)
        self._watch.clock = self.reactor
        self._watch.start(PARENT_CHECK_INTERVAL, now=False)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.reactor.callFromThread(self.quit)

    def _check_parent(self) -> None:
        if os.getppid() != self.parent:
            log.warn("The daemon (pid {pid}) is gone: stopping", pid=self.parent)
            self.quit()

    def quit(self) -> None:
        """Stop accepting, let open connections finish, then stop (counters flushed)."""
        if self._quitting:
            return
        self._quitting = True
        if self._watch is not None and self._watch.running:
            self._watch.stop()
        done = Deferred.fromCoroutine(self.http.hand_over(self.reactor, DRAIN_TIMEOUT,
                                                          IDLE_GRACE))
        done.addErrback(lambda failure: log.failure("Draining failed", failure))
        done.addBoth(lambda _: self._stop())

    def _stop(self) -> None:
        if self.counts is not None:  # what was answered since the daemon last asked
            report_counts(self.counts())
        self.reactor.stop()


def main(argv: list[str] | None = None) -> None:
    from mirrorbits.tap import Options, load_startup_config

    parent = daemon_pid(os.environ, os.getppid())
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
        config, path, _ = load_startup_config(options)  # the daemon logged the warnings
    except (usage.UsageError, ConfigError) as err:
        raise SystemExit(cannot_start(err)) from None
    if path is None:
        raise SystemExit(cannot_start("--config is needed"))
    reactor = default_reactor()
    globalLogBeginner.beginLoggingTo([log_observer(sys.stdout.buffer)],
                                     discardBuffer=True, redirectStandardIO=False)
    from mirrorbits.daemon import build_worker
    from mirrorbits.listen import ListenAddressError

    daemon, http, context = build_worker(
        config=config, config_path=path, repository=options["repository"], reactor=reactor,
        debug=bool(options["debug"]), listen_fd=LISTEN_FD, serving=report_serving)
    try:
        daemon.bind_listeners()
    except ListenAddressError as err:
        raise SystemExit(cannot_start(err)) from None
    changing = context.changing

    def told(kind: str, argument: Any) -> None:
        """A command line from the daemon: its held-down set, or a repository watch's mark."""
        if kind == HELD_DOWN:
            if isinstance(argument, list):
                context.cache.held_down.follow(argument)
        elif changing is not None:
            changing.follow(kind, argument)

    run = WorkerRun(reactor, daemon, http, parent,
                    counts=lambda: report_of(context.counts, context.cache_sizes()),
                    changing=told)
    reactor.callWhenRunning(run.start)
    reactor.run()
