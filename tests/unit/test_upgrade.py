"""Seamless upgrade helpers: the successor's command line, its environment, the pid file."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from mirrorbits.listen import AdoptedListener, parse_listen_address
from mirrorbits.upgrade import (
    ENV_FD,
    ENV_METRICS_FD,
    ENV_NAME,
    ENV_PIDFILE,
    ENV_PPID,
    HeldListener,
    Inheritance,
    UpgradeError,
    Upgrader,
    inheritance_from_env,
    parent_gone,
    ready_within,
    remove_pid_file,
    share_log_file,
    successor_env,
    twistd_successor_command,
    write_pid_file,
)
from mirrorbits.web.site import RedirectorSite

PY = "/usr/bin/python3"
TWISTD = "/venv/bin/twistd"
TAIL = ["mirrorbits", "--config", "/etc/m.conf", "--pidfile", "kept"]


@pytest.mark.parametrize(("options", "rebuilt", "pidfile"), [
    (["-n", "--pidfile", "/run/m.pid"], ["-n"], "/run/m.pid"),
    (["-n", "--pidfile=/run/m.pid"], ["-n"], "/run/m.pid"),
    (["--pid=rel.pid", "-n"], ["-n"], "rel.pid"),  # getopt abbreviations, as twistd takes them
    (["-n"], ["-n"], "twistd.pid"),  # twistd's default
    (["-n", "--pidfile="], ["-n"], None),
    (["-n", "--pidfile", ""], ["-n"], None),
    (["--pidfile", "a.pid", "--pidfile", "b.pid"], [], "b.pid"),
])
def test_successor_runs_without_a_pid_file(
        options: list[str], rebuilt: list[str], pidfile: str | None) -> None:
    command, found = twistd_successor_command(PY, [TWISTD, *options, *TAIL])
    assert command == [PY, TWISTD, *rebuilt, "--pidfile=", *TAIL]
    assert found == pidfile


def test_other_twistd_options_are_kept_in_a_form_twistd_reads_the_same() -> None:
    argv = [TWISTD, "-n", "-l", "/var/log/m.log", "--logfile=", "--umask", "022", "--nodaemon",
            "--reactor=epoll", *TAIL]
    command, _ = twistd_successor_command(PY, argv)
    assert command == [PY, TWISTD, "-n", "-l", "/var/log/m.log", "--logfile=", "--umask=022",
                       "--nodaemon", "--reactor=epoll", "--pidfile=", *TAIL]


def test_unparsable_command_line_is_an_upgrade_error() -> None:
    with pytest.raises(UpgradeError, match="cannot parse the command line"):
        twistd_successor_command(PY, [TWISTD, "--no-such-option", *TAIL])


def test_inherited_socket_is_honoured_only_from_the_real_parent() -> None:
    env = {ENV_FD: "5", ENV_PPID: "4242", ENV_PIDFILE: "/run/m.pid"}
    assert inheritance_from_env(env, 4242) == Inheritance(fd=5, ppid=4242, pidfile="/run/m.pid")
    assert inheritance_from_env(env, 1) is None  # a stale variable, parent gone
    assert inheritance_from_env(env, 4243) is None  # started from an operator's shell
    assert inheritance_from_env({ENV_FD: "5", ENV_PPID: "4242"}, 4242) == Inheritance(
        fd=5, ppid=4242, pidfile=None)
    assert inheritance_from_env({ENV_FD: "5"}, 4242) is None
    assert inheritance_from_env({ENV_FD: "x", ENV_PPID: "4242"}, 4242) is None
    assert inheritance_from_env({ENV_FD: "1", ENV_PPID: "4242"}, 4242) is None  # stdio


def test_the_metrics_socket_is_inherited_with_the_http_one() -> None:
    env = {ENV_FD: "5", ENV_PPID: "4242", ENV_METRICS_FD: "6"}
    assert inheritance_from_env(env, 4242) == Inheritance(fd=5, ppid=4242, pidfile=None,
                                                          metrics_fd=6)
    for odd in ("x", "2", "5"):  # not a number, stdio, the HTTP socket itself
        inherited = inheritance_from_env({**env, ENV_METRICS_FD: odd}, 4242)
        assert inherited is not None and inherited.metrics_fd is None
    assert inheritance_from_env({ENV_METRICS_FD: "6", ENV_PPID: "4242"}, 4242) is None
    assert successor_env({ENV_METRICS_FD: "9"}, 7, "n", 100, None, 8)[ENV_METRICS_FD] == "8"
    assert ENV_METRICS_FD not in successor_env({ENV_METRICS_FD: "9"}, 7, "n", 100, None)


def test_successor_env_adds_the_hand_over_variables() -> None:
    base = {"PATH": "/bin", ENV_PIDFILE: "/stale.pid", ENV_FD: "9"}
    env = successor_env(base, 7, "tcp:127.0.0.1:8080->", 100, "/run/m.pid")
    assert env == {"PATH": "/bin", ENV_FD: "7", ENV_NAME: "tcp:127.0.0.1:8080->",
                   ENV_PPID: "100", ENV_PIDFILE: "/run/m.pid"}
    assert ENV_PIDFILE not in successor_env(base, 7, "n", 100, None)
    assert base[ENV_FD] == "9"  # not modified


def test_pid_file_is_written_atomically_0644_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "m.pid"
    path.write_text("999999")
    old_umask = os.umask(0o077)
    try:
        write_pid_file(str(path), 1234)
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"1234"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.pid"]  # no temporary file left


def test_pid_file_is_removed_only_while_it_names_us(tmp_path: Path) -> None:
    path = tmp_path / "m.pid"
    write_pid_file(str(path), 1234)
    assert remove_pid_file(str(path), 4321) is False
    assert path.read_text() == "1234"
    assert remove_pid_file(str(path), 1234) is True
    assert not path.exists()
    assert remove_pid_file(str(path), 1234) is False


def test_parent_gone() -> None:
    assert parent_gone(os.getppid(), direct_child=True) is False
    assert parent_gone(os.getpid(), direct_child=False) is False
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert parent_gone(finished.pid, direct_child=False) is True
    assert parent_gone(os.getpid(), direct_child=True) is True  # we were re-parented


def test_log_file_goes_to_append_mode(tmp_path: Path) -> None:
    log = tmp_path / "twistd.log"
    log.write_bytes(b"")
    with open(log, "rb+", 0) as stream:  # as twistd's LogFile opens it
        flags = fcntl.fcntl(stream.fileno(), fcntl.F_GETFL)
        assert not flags & os.O_APPEND
        assert share_log_file([TWISTD, "-n", "--logfile", "twistd.log", *TAIL],
                              str(tmp_path)) == 1
        assert fcntl.fcntl(stream.fileno(), fcntl.F_GETFL) & os.O_APPEND
    assert share_log_file([TWISTD, "-n", *TAIL], str(tmp_path)) == 0


# The old process' side, on a memory reactor with real sockets and a real (fake) successor.

CHILD = """
import json, os, socket, stat, sys
fd = int(os.environ["OLD_FD"])
report = {"argv": sys.argv[1:], "ppid": int(os.environ["OLD_PPID"]),
          "pidfile": os.environ.get("MIRRORBITS_PIDFILE"), "name": os.environ["OLD_NAME"],
          "socket": stat.S_ISSOCK(os.fstat(fd).st_mode),
          "listening": socket.socket(fileno=fd).getsockopt(
              socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1}
with open(os.environ["REPORT"], "w") as out:
    json.dump(report, out)
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def result(deferred: Deferred[Any]) -> Any:
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    assert outcome, "not finished"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def make_upgrader(tmp_path: Path, executable: str = sys.executable,
                  **env: str) -> tuple[Upgrader, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    script = tmp_path / "fake-twistd"
    script.write_text(CHILD)
    site = RedirectorSite(Resource(), reactor=reactor)
    http = HeldListener(parse_listen_address("127.0.0.1:0"), site, reactor)
    control = AdoptedListener(parse_listen_address("127.0.0.1:0"), object(), reactor)
    http.startService()
    control.startService()
    full_env = {**os.environ, "REPORT": str(tmp_path / "report.json"), **env}
    upgrader = Upgrader(reactor=reactor, http=http, control=control,
                        argv=[str(script), "-n", "--pidfile", "m.pid", "mirrorbits", "-c", "x"],
                        cwd=str(tmp_path), executable=executable, env=lambda: full_env)
    return upgrader, reactor


def wait_report(path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (OSError, ValueError):
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_upgrade_spawns_the_successor_with_the_listening_socket(tmp_path: Path) -> None:
    upgrader, _ = make_upgrader(tmp_path)
    pid = result(Deferred.fromCoroutine(upgrader.upgrade()))
    assert not upgrader.control.running  # the successor binds RPCListenAddress
    report = wait_report(tmp_path / "report.json")
    port = socket.socket(fileno=os.dup(upgrader.http.fileno()))
    assert report == {"argv": ["-n", "--pidfile=", "mirrorbits", "-c", "x"], "ppid": os.getpid(),
                      "pidfile": str(tmp_path / "m.pid"),
                      "name": f"tcp:127.0.0.1:{port.getsockname()[1]}->",
                      "socket": True, "listening": True}
    port.close()
    with pytest.raises(UpgradeError, match="already in progress"):
        result(Deferred.fromCoroutine(upgrader.upgrade()))
    os.waitpid(pid, 0)


def test_successor_failing_to_start_gives_the_control_channel_back(tmp_path: Path) -> None:
    upgrader, reactor = make_upgrader(tmp_path, EXIT="3")
    result(Deferred.fromCoroutine(upgrader.upgrade()))
    deadline = time.monotonic() + 10
    while not upgrader.control.running:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        reactor.advance(0.2)
    assert len(reactor.adoptedPorts) == 3  # http, control, control again
    again = result(Deferred.fromCoroutine(upgrader.upgrade()))  # may be tried again
    os.waitpid(again, 0)


def test_spawn_error_is_reported_and_control_reopened(tmp_path: Path) -> None:
    upgrader, reactor = make_upgrader(tmp_path, executable=str(tmp_path / "missing"))
    with pytest.raises(UpgradeError, match="cannot start the new process"):
        result(Deferred.fromCoroutine(upgrader.upgrade()))
    assert upgrader.control.running
    assert len(reactor.adoptedPorts) == 3


def test_refusal_is_reported_and_nothing_changes(tmp_path: Path) -> None:
    upgrader, reactor = make_upgrader(tmp_path)
    upgrader.refusal = "not possible here"
    with pytest.raises(UpgradeError, match="not possible here"):
        result(Deferred.fromCoroutine(upgrader.upgrade()))
    assert upgrader.control.running and len(reactor.adoptedPorts) == 2


def test_held_listener_accepts_only_once_ready() -> None:
    reactor = MemoryReactorClock()
    ready: Deferred[None] = Deferred()
    served: list[bool] = []
    listener = HeldListener(parse_listen_address("127.0.0.1:0"), object(), reactor,
                            hold=lambda: ready, on_serving=lambda: served.append(True))
    listener.startService()
    assert reactor.adoptedPorts == [] and served == []
    ready.callback(None)
    assert len(reactor.adoptedPorts) == 1 and served == [True]
    listener.stopService()


def test_held_listener_stopped_before_ready_never_accepts() -> None:
    reactor = MemoryReactorClock()
    ready: Deferred[None] = Deferred()
    listener = HeldListener(parse_listen_address("127.0.0.1:0"), object(), reactor,
                            hold=lambda: ready)
    listener.startService()
    listener.stopService()
    assert reactor.adoptedPorts == []


def test_ready_within_gives_up_waiting_after_the_timeout() -> None:
    clock = MemoryReactorClock()
    waited = ready_within(Deferred(), clock, 10.0)
    clock.advance(9.9)
    assert not waited.called
    clock.advance(0.2)
    assert result(waited) is None


def test_drain_waits_for_open_connections_up_to_the_timeout() -> None:
    clock = MemoryReactorClock()
    listener = HeldListener(parse_listen_address("127.0.0.1:0"),
                            RedirectorSite(Resource(), reactor=clock), clock)
    channel = listener.factory.buildProtocol(None)
    channel.makeConnection(StringTransport())
    channel.transport.connected = True
    done = Deferred.fromCoroutine(listener.drain(clock, 1.0, idle_grace=10.0))
    clock.pump([0.05] * 10)
    assert not done.called
    channel.transport.connected = False
    clock.pump([0.05] * 2)
    assert result(done) == 0
    stuck = listener.factory.buildProtocol(None)
    stuck.makeConnection(StringTransport())
    stuck.transport.connected = True  # still open at the timeout
    late = Deferred.fromCoroutine(listener.drain(clock, 1.0, idle_grace=10.0))
    clock.pump([0.05] * 19)
    assert not late.called
    clock.pump([0.05] * 3)
    assert result(late) == 1


class SocketTransport(StringTransport):
    """A test transport whose handle is one end of a real socket pair."""

    def __init__(self, handle: socket.socket) -> None:
        super().__init__()
        self.handle = handle
        self.connected = True

    def getHandle(self) -> socket.socket:
        return self.handle


def test_drain_closes_silent_connections_after_the_grace() -> None:
    """Nothing is closed at once (a client may be sending its next request); after the
    grace, a silent connection closes unless a request waits unread in the kernel."""
    clock = MemoryReactorClock()
    listener = HeldListener(parse_listen_address("127.0.0.1:0"),
                            RedirectorSite(Resource(), reactor=clock), clock)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        silent, sending, halfway = (listener.factory.buildProtocol(None) for _ in range(3))
        for channel, (ours, _) in zip((silent, sending, halfway), pairs, strict=True):
            channel.makeConnection(SocketTransport(ours))
        halfway.dataReceived(b"GET /a HT")  # the rest of the request is on its way
        done = Deferred.fromCoroutine(listener.drain(clock, 5.0, idle_grace=1.0))
        assert all(channel.closing for channel in (silent, sending, halfway))
        clock.pump([0.05] * 19)
        assert not any(channel.transport.disconnecting
                       for channel in (silent, sending, halfway))
        pairs[1][1].sendall(b"GET /a HTTP/1.1\r\n")  # not read by the reactor yet
        clock.pump([0.05] * 2)
        assert silent.transport.disconnecting
        assert not sending.transport.disconnecting and not halfway.transport.disconnecting
        for channel in (silent, sending, halfway):
            channel.transport.connected = False
        clock.pump([0.05])
        assert result(done) == 0
    finally:
        for pair in pairs:
            for end in pair:
                end.close()
