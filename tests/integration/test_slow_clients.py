"""Slow clients on a real daemon: requests must arrive within HTTPReadTimeout, however slowly.

The daemon runs with ``HTTPReadTimeout: 2`` (the default, 10 s, is read back from the daemon's
wiring in tests/unit/test_http_timeouts.py). Times are measured from the client's side with
generous upper margins: the machine is shared.
"""

from __future__ import annotations

import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from tests.daemon import DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.servers import RedisServer

TIMEOUT = 2.0
MARGIN = 2.5  # late closing tolerated on a loaded machine
GET = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 100.96.2.10\r\n\r\n"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module, on a private redis-server (other tests flush the shared one)."""
    root = tmp_path_factory.mktemp("slow-clients")
    repo = root / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    server = RedisServer(workdir=root / "redis")
    server.start()
    process = DaemonProcess(workdir=root / "run",
                            values=base_config(repo, server.address,
                                               HTTPReadTimeout=str(TIMEOUT)),
                            args=["--no-monitor"])
    process.start()
    try:
        db = redis.Redis(host=server.host, port=server.port, decode_responses=True)
        assert process.ctl("refresh").returncode == 0
        put_a_txt_on_a_mirror(process, db)
        db.close()
        deadline = time.monotonic() + 15
        while redirect_seconds(process) is None:
            assert time.monotonic() < deadline, process.log()
            time.sleep(0.05)
        yield process
    finally:
        process.stop()
        server.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def redirect_seconds(daemon: DaemonProcess) -> float | None:
    """How long an ordinary client waits for its 302 to the mirror; None if it gets none."""
    host, port = daemon.http
    request = urllib.request.Request(f"http://{host}:{port}/a.txt",
                                     headers={"X-Forwarded-For": "100.96.2.10"})
    started = time.monotonic()
    try:
        _OPENER.open(request, timeout=10)
    except urllib.error.HTTPError as answer:
        if answer.code == 302 and answer.headers["Location"] == "http://127.0.0.31/a.txt":
            return time.monotonic() - started
    return None


def connect(daemon: DaemonProcess) -> socket.socket:
    sock = socket.create_connection(daemon.http, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_after(sock: socket.socket, since: float, limit: float = 10.0) -> float:
    """Seconds from ``since`` until the daemon closes ``sock`` (which it must not answer)."""
    sock.settimeout(limit)
    data = sock.recv(4096)
    assert data == b"", data  # closed without an answer, like the reference
    return time.monotonic() - since


def read_answer(sock: socket.socket) -> bytes:
    """One bodiless answer (the 302)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_half_a_request_line_is_closed_after_the_read_timeout(daemon: DaemonProcess) -> None:
    started = time.monotonic()
    with connect(daemon) as sock:
        sock.sendall(b"GET /a.t")
        elapsed = closed_after(sock, started)
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + MARGIN, elapsed


def test_a_byte_every_quarter_second_does_not_keep_the_connection(
        daemon: DaemonProcess) -> None:
    """Slowloris: the deadline bounds the whole request, it is not renewed by each byte."""
    endless = b"GET /a.txt HTTP/1.1\r\nX-Padding: " + b"a" * 1000
    started = time.monotonic()
    sent = 0
    closed = False
    with connect(daemon) as sock:
        while not closed and time.monotonic() - started < TIMEOUT + MARGIN + 5:
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                assert sock.recv(4096) == b""  # closed without an answer
                closed = True
                break
            try:
                sock.sendall(endless[sent:sent + 1])
            except OSError:  # reset by the daemon
                closed = True
            sent += 1
        elapsed = time.monotonic() - started
    assert closed and sent >= 6  # bytes kept arriving until the end
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + MARGIN, elapsed


def test_idle_keep_alive_and_the_next_request_have_their_own_timeouts(
        daemon: DaemonProcess) -> None:
    with connect(daemon) as sock:  # idle after an answer: closed after the idle timeout
        sock.sendall(GET)
        assert read_answer(sock).startswith(b"HTTP/1.1 302 Found\r\n")
        elapsed = closed_after(sock, time.monotonic())
    assert TIMEOUT - 0.2 <= elapsed < TIMEOUT + MARGIN, elapsed
    with connect(daemon) as sock:  # the next request, begun 1 s into the idle time
        sock.sendall(GET)
        assert read_answer(sock).startswith(b"HTTP/1.1 302 Found\r\n")
        answered = time.monotonic()
        time.sleep(1.0)
        sock.sendall(GET[:10])
        begun = time.monotonic()
        elapsed = closed_after(sock, begun)
    assert TIMEOUT - 0.1 <= elapsed < TIMEOUT + MARGIN, elapsed
    assert begun - answered + elapsed > TIMEOUT + 0.5  # a deadline from its first byte


def test_two_hundred_stalled_connections_do_not_delay_other_clients(
        daemon: DaemonProcess) -> None:
    stalled = []
    started = time.monotonic()
    try:
        for _ in range(200):
            sock = connect(daemon)
            sock.sendall(GET[:13])
            stalled.append(sock)
        opened = time.monotonic()
        waits = []
        for _ in range(5):  # ordinary clients, while the 200 hang
            seconds = redirect_seconds(daemon)
            assert seconds is not None
            waits.append(seconds)
        assert time.monotonic() - opened < TIMEOUT  # every answer came while they hung
        assert max(waits) < 1.0, waits
        for sock in stalled:
            closed_after(sock, started, limit=TIMEOUT + MARGIN + 5)
        everything = time.monotonic() - started
        assert everything < TIMEOUT + MARGIN + (opened - started), everything
    finally:
        for sock in stalled:
            sock.close()
    assert redirect_seconds(daemon) is not None  # and the daemon still serves


def test_slow_clients_leave_no_log_line(daemon: DaemonProcess) -> None:
    with connect(daemon) as sock:
        sock.sendall(b"GET /")
        closed_after(sock, time.monotonic())
    assert "Timing out client" not in daemon.log()
