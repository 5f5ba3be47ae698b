"""systemd: which inherited socket is which, and what the daemon tells systemd when."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mirrorbits.systemd.activation import (
    ActivatedSockets,
    ActivationError,
    activated_sockets,
    take_activated_sockets,
)
from mirrorbits.systemd.notify import (
    Notifier,
    ready_message,
    reloading_message,
    socket_address,
    stopping_message,
)

PID = 4242


def env(fds: str, names: str | None = None, pid: int = PID) -> dict[str, str]:
    values = {"LISTEN_PID": str(pid), "LISTEN_FDS": fds}
    if names is not None:
        values["LISTEN_FDNAMES"] = names
    return values


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ActivatedSockets()),
        (env("1", "http", pid=PID + 1), ActivatedSockets()),  # for another process
        (env("0", ""), ActivatedSockets()),
        (env("1", "http"), ActivatedSockets(http=3)),
        (env("1", "mirrorbits.socket"), ActivatedSockets(http=3)),  # systemd's default name
        (env("1"), ActivatedSockets(http=3)),  # systemd < 227, or a hand-made start
        (env("1", "control"), ActivatedSockets(control=3)),
        (env("2", "control:http"), ActivatedSockets(http=4, control=3)),
        (env("2", "http:control"), ActivatedSockets(http=3, control=4)),
        (env("3", "http:metrics:control"), ActivatedSockets(http=3, control=5, metrics=4)),
    ],
)
def test_sockets_by_name(environ: dict[str, str], expected: ActivatedSockets) -> None:
    assert activated_sockets(environ, PID) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (env("x"), "systemd: LISTEN_FDS='x' is not a number of sockets"),
        (env("-1"), "systemd: LISTEN_FDS='-1' is not a number of sockets"),
        (env("2"), "systemd passed 2 sockets without names: name them 'http' and 'control' "
                   "(FileDescriptorName=)"),
        (env("2", "http"), "systemd: LISTEN_FDNAMES='http' names 1 sockets, LISTEN_FDS=2"),
        (env("2", "a:http"), "systemd passed 2 sockets named 'a:http': name them 'http' and "
                             "'control' (FileDescriptorName=)"),
        (env("2", "http:http"), "systemd passed two sockets named 'http'"),
    ],
)
def test_sockets_that_cannot_be_used(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ActivationError) as raised:
        activated_sockets(environ, PID)
    assert str(raised.value) == message


def test_taking_the_sockets_removes_the_variables() -> None:
    environ = {**env("1", "http"), "PATH": "/bin"}
    assert take_activated_sockets(environ, PID) == ActivatedSockets(http=3)
    assert environ == {"PATH": "/bin"}
    environ = {**env("x")}
    with pytest.raises(ActivationError):
        take_activated_sockets(environ, PID)
    assert environ == {}


def test_messages() -> None:
    assert ready_message("Serving HTTP on :8080") == b"READY=1\nSTATUS=Serving HTTP on :8080"
    assert ready_message("x", main_pid=77) == b"MAINPID=77\nREADY=1\nSTATUS=x"
    assert reloading_message(123456, "Reloading") == (
        b"RELOADING=1\nMONOTONIC_USEC=123456\nSTATUS=Reloading")
    assert stopping_message("Stopping") == b"STOPPING=1\nSTATUS=Stopping"
    assert ready_message("two\nlines") == b"READY=1\nSTATUS=two lines"


def test_notify_socket_addresses() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract") == "\0abstract"
    assert socket_address("vsock:2:1234") is None
    assert socket_address("relative") is None


def recording(address: str | None = "/run/notify") -> tuple[Notifier, list[bytes]]:
    sent: list[bytes] = []
    notifier = Notifier(address, clock=lambda: 1000,
                        send=lambda to, message: sent.append(message))
    return notifier, sent


def test_ready_reload_stop() -> None:
    notifier, sent = recording()
    notifier.ready("Serving")
    notifier.reloading()
    notifier.reloaded("Serving again")
    notifier.stopping()
    notifier.stopping()
    assert sent == [b"READY=1\nSTATUS=Serving",
                    b"RELOADING=1\nMONOTONIC_USEC=1000\nSTATUS=Reloading the configuration",
                    b"READY=1\nSTATUS=Serving again",
                    b"STOPPING=1\nSTATUS=Stopping"]


def test_before_ready_reloads_and_stops_are_not_sent() -> None:
    """systemd still waits for READY=1: a RELOADING=1/READY=1 pair would end the start early."""
    notifier, sent = recording()
    notifier.reloading()
    notifier.reloaded("Serving")
    notifier.status("Connected")
    notifier.stopping()
    assert sent == []


def test_status_updates_only_while_serving() -> None:
    notifier, sent = recording()
    notifier.ready("Serving (database not ready)")
    notifier.status("Serving")
    notifier.stopping()
    notifier.status("late")
    assert sent == [b"READY=1\nSTATUS=Serving (database not ready)", b"STATUS=Serving",
                    b"STOPPING=1\nSTATUS=Stopping"]


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier, sent = recording(None)
    notifier.ready("Serving")
    notifier.stopping()
    assert sent == [] and notifier.environment() == {}


def test_the_successor_gets_the_socket() -> None:
    assert Notifier.from_value("@sd").environment() == {"NOTIFY_SOCKET": "@sd"}
    assert Notifier.from_value("/run/n").environment() == {"NOTIFY_SOCKET": "/run/n"}
    assert Notifier.from_value(None).address is None
    assert Notifier.from_value("vsock:1:2").address is None


def test_send_errors_never_stop_the_daemon() -> None:
    def refuse(address: str, message: bytes) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    notifier = Notifier("/run/gone", send=refuse)
    notifier.ready("Serving")
    notifier.stopping()


def test_the_plugin_reads_the_sockets_before_anything_takes_them_from_the_environment() -> None:
    """twisted.internet.endpoints removes LISTEN_PID/LISTEN_FDS from the environment when it
    is imported: mirrorbits.tap, which reads them, must not import it (through the Redis
    client, say) before it has."""
    code = ("import sys, mirrorbits.tap; "
            "print('twisted.internet.endpoints' in sys.modules, 'txredisapi' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
