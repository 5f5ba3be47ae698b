"""The worker processes' pure parts (how many, what they inherit, what they say) and the
shared socket's accepting."""

from __future__ import annotations

import signal
import socket
from typing import Any, cast

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger as TwistedLogger
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from mirrorbits.config import Config
from mirrorbits.listen import adopt, create_socket, parse_listen_address
from mirrorbits.logs import set_debug
from mirrorbits.workers import worker_count
from mirrorbits.workers.echo import DaemonEchoes
from mirrorbits.workers.pool import WorkerPool, _Worker, describe_end, worker_environment
from mirrorbits.workers.wire import (
    DAEMON_PID_ENV,
    cannot_start,
    daemon_pid,
    log_line,
    parse_log_line,
    parse_worker_line,
)


def test_worker_count_is_the_setting_else_one_per_core() -> None:
    assert worker_count(Config(workers=3), from_file=True, cores=8) == 3
    assert worker_count(Config(workers=1), from_file=True, cores=8) == 1
    assert worker_count(Config(), from_file=True, cores=8) == 8
    assert worker_count(Config(), from_file=True, cores=None) == 1
    assert worker_count(Config(), from_file=False, cores=8) == 1  # no file: one process


def test_a_worker_is_neither_a_successor_nor_systemds_service() -> None:
    env = {"PATH": "/bin", "OLD_FD": "5", "OLD_PPID": "9", "OLD_NAME": "tcp:x",
           "MIRRORBITS_PIDFILE": "/run/m.pid", "NOTIFY_SOCKET": "/run/n", "LISTEN_PID": "3",
           "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http", "TZ": "UTC"}
    assert worker_environment(env) == {"PATH": "/bin", "TZ": "UTC"}


def test_a_worker_knows_its_daemon_even_if_it_died_during_the_start() -> None:
    """The daemon's pid comes from the daemon: a worker reading os.getppid() after the
    daemon was stopped during its start got init's pid, and served forever as an orphan."""
    env = worker_environment({"PATH": "/bin", DAEMON_PID_ENV: "1"}, daemon=4321)
    assert env == {"PATH": "/bin", DAEMON_PID_ENV: "4321"}
    assert daemon_pid(env, parent=1) == 4321  # reparented already: still told apart
    assert DAEMON_PID_ENV not in env  # not passed on to what the worker starts
    for missing in ({}, {DAEMON_PID_ENV: "x"}, {DAEMON_PID_ENV: "0"}):
        assert daemon_pid(dict(missing), parent=77) == 77


def test_log_lines_keep_their_level() -> None:
    for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error,
                  LogLevel.critical):
        line = log_line(level, "a {brace} text")
        assert line.endswith("\n")
        assert parse_log_line(line[:-1]) == (level, "a {brace} text")
    assert parse_log_line("Traceback (most recent call last):") == (
        LogLevel.info, "Traceback (most recent call last):")


def test_how_a_worker_ended() -> None:
    assert describe_end(Failure(ProcessTerminated(signal=signal.SIGKILL))) == (
        "was killed by SIGKILL")
    assert describe_end(Failure(ProcessTerminated(exitCode=2))) == "exited with status 2"
    assert describe_end(Failure(ProcessDone(0))) == "exited with status 0"


def test_a_shared_socket_is_accepted_one_connection_per_wake_up() -> None:
    """Twisted accepts up to 100+ waiting connections per wake-up: on a socket shared by the
    workers, the first woken would take a whole burst."""
    sock = create_socket(parse_listen_address("127.0.0.1:0"))
    built: list[object] = []

    class Factory(ServerFactory):
        def buildProtocol(self, addr: object) -> Protocol:
            built.append(addr)
            return Protocol()

    reactor = MemoryReactorClock()
    clients = [socket.create_connection(sock.getsockname()) for _ in range(3)]
    try:
        port: Any = adopt(cast(Any, reactor), sock, Factory(), shared=True)
        counts = []
        while len(built) < 3 and len(counts) < 10:
            port.doRead()
            counts.append(len(built))
        assert counts == [1, 2, 3]
        port.numberAccepts = 500  # what Twisted does after a full accept loop
        assert port.numberAccepts == 1
    finally:
        for client in clients:
            client.close()
        sock.close()


def test_one_redis_event_is_one_line_however_many_processes_saw_it() -> None:
    # One Redis outage was said by the daemon and again by every worker ("worker 12700:
    # Database is down: ..."): 4 more lines per worker for a restart of Redis.
    clock = MemoryReactorClock()
    echoes = DaemonEchoes(clock)
    pool = WorkerPool(cast(Any, None), 2, clock, [], ".", echoes=echoes)
    first, second = _Worker(pool, 0, 0.0), _Worker(pool, 1, 0.0)
    first.pid, second.pid = 12700, 12701
    first.serving = second.serving = True
    relayed: list[tuple[LogLevel, str]] = []

    def said(worker: _Worker, level: LogLevel, text: str, shared: bool = True) -> None:
        # as the pipe's lines come: unterminated; ``shared``: from a store module
        pool.worker_said(worker, log_line(level, text, shared).rstrip("\n"))

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "mirrorbits.workers.pool":
            relayed.append((event["log_level"], formatEvent(event)))

    down = "Database is down: 127.0.0.1:6379: Not connected"
    back = "Connected to redis master 127.0.0.1:6379 (version 7.0.15)"
    store = TwistedLogger(namespace="mirrorbits.store.redis", observer=echoes)
    globalLogPublisher.addObserver(observe)
    set_debug(True)
    try:
        store.error(down)  # the daemon first: each worker's line is its echo
        clock.advance(0.1)
        said(first, LogLevel.error, down)
        said(second, LogLevel.error, down)
        said(first, LogLevel.info, "SIGHUP Received: Reloading...", shared=False)
        clock.advance(8)
        said(first, LogLevel.info, back)  # the workers first: held for the daemon's line
        said(second, LogLevel.info, back)
        clock.advance(0.5)
        store.info(back)
        clock.advance(2)
        clock.advance(10)
        said(second, LogLevel.error, down)  # this worker alone: said, a moment later
        assert len(relayed) == 5  # held
        clock.advance(2)
        starting = _Worker(pool, 1, 0.0)
        starting.pid = 12702
        said(starting, LogLevel.info, "Connected to redis master 127.0.0.1:6380 (x)")  # now
        assert relayed[-1] == (LogLevel.info,
                               "worker 12702: Connected to redis master 127.0.0.1:6380 (x)")
        relayed.pop()
    finally:
        set_debug(False)
        globalLogPublisher.removeObserver(observe)
    assert relayed == [
        (LogLevel.debug, f"worker 12700: {down}"),
        (LogLevel.debug, f"worker 12701: {down}"),
        (LogLevel.info, "worker 12700: SIGHUP Received: Reloading..."),
        (LogLevel.debug, f"worker 12700: {back}"),
        (LogLevel.debug, f"worker 12701: {back}"),
        (LogLevel.error, f"worker 12701: {down}"),
    ]


def test_a_line_about_redis_is_marked_as_shared() -> None:
    assert parse_worker_line(log_line(LogLevel.warn, "Pub/sub lost", True)[:-1]) == (
        LogLevel.warn, True, "Pub/sub lost")
    assert parse_worker_line(log_line(LogLevel.warn, "Pub/sub lost")[:-1]) == (
        LogLevel.warn, False, "Pub/sub lost")
    assert parse_worker_line("warn* ") == (LogLevel.warn, True, "")


def test_why_a_replacement_cannot_start_is_said_once_until_one_serves() -> None:
    # While the configuration file is invalid every replacement (0.5 s, then up to every
    # 5 s) said the same two lines, the reason at info level: 1,400 lines an hour.
    clock = MemoryReactorClock()
    pool = WorkerPool(cast(Any, None), 1, clock, [], ".")
    pool.running = True
    relayed: list[tuple[LogLevel, str]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "mirrorbits.workers.pool":
            relayed.append((event["log_level"], formatEvent(event)))

    def failing(pid: int, why: str) -> None:
        worker = _Worker(pool, 0, clock.seconds())
        worker.pid = pid
        pool.worker_said(worker, cannot_start(why))
        pool.worker_ended(worker, Failure(ProcessTerminated(exitCode=1)))

    bad = "CheckInterval must be a number of minutes >= 0, not -3 (line 10 in m.conf)"
    globalLogPublisher.addObserver(observe)
    set_debug(True)
    try:
        failing(1, bad)
        failing(2, bad)
        failing(3, "Workers must be an integer, not 'x' (line 7 in m.conf)")  # news
        serving = _Worker(pool, 0, clock.seconds())
        serving.pid = 4
        pool.worker_serving(serving)
        failing(5, bad)  # after one served, news again
    finally:
        set_debug(False)
        globalLogPublisher.removeObserver(observe)
    levels = [(level, text.split(":")[0]) for level, text in relayed]
    assert levels == [
        (LogLevel.error, "worker 1"), (LogLevel.warn, "HTTP worker 1 exited with status 1"),
        (LogLevel.debug, "worker 2"), (LogLevel.debug, "HTTP worker 2 exited with status 1"),
        (LogLevel.error, "worker 3"), (LogLevel.warn, "HTTP worker 3 exited with status 1"),
        (LogLevel.error, "worker 5"), (LogLevel.warn, "HTTP worker 5 exited with status 1"),
    ], relayed
    assert relayed[0][1] == f"worker 1: mirrorbits worker cannot start: {bad}"


def test_a_state_the_daemon_said_is_not_said_again_by_a_worker_started_later() -> None:
    # A worker replaced a minute into an outage found Redis a replica, as the daemon had
    # said: the line came twice, the window of ECHO_WINDOW seconds long over.
    clock = MemoryReactorClock()
    echoes = DaemonEchoes(clock)
    replica = "Redis 127.0.0.1:6379 is a replica: read from, and writes wait until a master answers"
    store = TwistedLogger(namespace="mirrorbits.store.redis", observer=echoes)
    store.warn(replica)
    clock.advance(60)
    assert echoes.repeats(replica)
    store.info("Connected to redis master 127.0.0.1:6379 (version 7.0.15)")  # it is over
    clock.advance(60)
    assert not echoes.repeats(replica)
