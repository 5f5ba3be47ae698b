"""The worker processes' pure parts (how many, what they inherit, what they say) and the
shared socket's accepting."""

from __future__ import annotations

import signal
import socket
from typing import Any, cast

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from mirrorbits.config import Config
from mirrorbits.listen import adopt, create_socket, parse_listen_address
from mirrorbits.workers import worker_count
from mirrorbits.workers.pool import describe_end, worker_environment
from mirrorbits.workers.wire import log_line, parse_log_line


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
