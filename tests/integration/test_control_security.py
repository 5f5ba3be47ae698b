"""The control channel under attack, against a real daemon (twistd) and redis-server.

Wrong passwords are counted per source address: after a few, the source is refused for a
growing time, while the right password from another source still works. Connections come
from several loopback addresses (127.0.0.x), each on its own socket, like separate hosts.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mirrorbits.control.throttle import FREE_FAILURES
from tests.daemon import DaemonProcess, base_config, repo_file
from tests.integration.amp_wire import call, error_code
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "right-password"
ATTACKS = 20


@pytest.fixture
def daemon(tmp_path: Path, redis_server: RedisServer,
           redis_db: redis.Redis) -> Iterator[DaemonProcess]:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    values = base_config(repo, redis_server.address, RPCPassword=PASSWORD)
    process = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    process.start()
    yield process
    process.stop()


def test_wrong_passwords_in_a_row_are_refused_not_checked(daemon: DaemonProcess) -> None:
    codes = []
    started = time.monotonic()
    for number in range(ATTACKS):
        codes.append(error_code(call(daemon.rpc, "Ping", source="127.0.0.2",
                                     password=f"guess-{number}")))
    elapsed = time.monotonic() - started
    # The first wrong passwords are checked (and refused); the next one blocks the source.
    assert codes[:FREE_FAILURES + 1] == ["ACCESS_DENIED"] * (FREE_FAILURES + 1)
    assert codes[FREE_FAILURES + 1:] == ["TOO_MANY_FAILURES"] * (ATTACKS - FREE_FAILURES - 1), (
        codes, elapsed)
    # Even the right password is not looked at while the source is refused...
    refused = call(daemon.rpc, "Ping", source="127.0.0.2", password=PASSWORD)
    assert error_code(refused) == "TOO_MANY_FAILURES"
    assert refused[b"_error_description"].startswith(
        b"too many wrong passwords from 127.0.0.2: try again in ")
    # ... while another source is served as usual, by the real client.
    assert error_code(call(daemon.rpc, "Ping", source="127.0.0.3", password=PASSWORD)) == ""
    listing = daemon.ctl("list")
    assert listing.returncode == 0, listing.stderr
    daemon.wait_log("Control: wrong password from 127.0.0.2, refused for 1 s")
    assert "guess-" not in daemon.log()
    # The block ends: the right password clears the count.
    time.sleep(1.1)
    assert error_code(call(daemon.rpc, "Ping", source="127.0.0.2", password=PASSWORD)) == ""
    assert error_code(call(daemon.rpc, "Ping", source="127.0.0.2", password="again")) \
        == "ACCESS_DENIED"


def test_a_command_without_password_is_refused_cleanly(daemon: DaemonProcess) -> None:
    """Spec §20.6: the reference's daemon crashes on a call without password metadata.
    Here a missing ``password`` counts as empty: refused, and the daemon keeps serving."""
    for command in ("Ping", "List"):
        answer = call(daemon.rpc, command, source="127.0.0.4")
        assert error_code(answer) == "ACCESS_DENIED", answer
    assert daemon.ctl("list", password=PASSWORD).returncode == 0
    assert "Traceback" not in daemon.log()


def test_the_block_grows_and_the_client_says_why(daemon: DaemonProcess) -> None:
    for number in range(FREE_FAILURES + 1):
        call(daemon.rpc, "Ping", password=f"guess-{number}")
    for block in (1, 2):  # a wrong password after each block ends doubles the next one
        time.sleep(block + 0.1)
        assert error_code(call(daemon.rpc, "Ping", password="guess")) == "ACCESS_DENIED"
    daemon.wait_log("Control: wrong password from 127.0.0.1, refused for 4 s")
    refused = daemon.ctl("list")  # the right password, from the blocked source
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "too many wrong passwords from 127.0.0.1: try again in "), refused.stderr


def test_connections_that_do_nothing_are_closed(daemon: DaemonProcess) -> None:
    """A connection that never sends the right password is closed after
    UNAUTHENTICATED_TIMEOUT, however busy; one that did stays open (until IDLE_TIMEOUT)."""
    from mirrorbits.control.idle import IDLE_TIMEOUT, UNAUTHENTICATED_TIMEOUT
    from tests.integration.amp_wire import encode_box, read_box

    def ping(sock: socket.socket, password: str) -> str:
        sock.sendall(encode_box({b"_command": b"Ping", b"_ask": b"1",
                                 b"password": password.encode()}))
        return error_code(read_box(sock))

    def closed(sock: socket.socket) -> bool:
        try:
            return sock.recv(1) == b""
        except ConnectionResetError:
            return True

    started = time.monotonic()
    silent = socket.create_connection(daemon.rpc, timeout=10)
    guessing = socket.create_connection(daemon.rpc, timeout=10, source_address=("127.0.0.4", 0))
    admin = socket.create_connection(daemon.rpc, timeout=10)
    with silent, guessing, admin:
        assert ping(admin, PASSWORD) == ""
        for _ in range(int(UNAUTHENTICATED_TIMEOUT) * 4):  # activity without the password
            try:
                assert ping(guessing, "guess") in ("ACCESS_DENIED", "TOO_MANY_FAILURES")
            except ConnectionError:
                break
            time.sleep(0.5)
        guessed_for = time.monotonic() - started
        assert UNAUTHENTICATED_TIMEOUT - 1 < guessed_for < UNAUTHENTICATED_TIMEOUT + 5
        assert closed(silent)
        assert IDLE_TIMEOUT > 2 * UNAUTHENTICATED_TIMEOUT
        assert ping(admin, PASSWORD) == ""  # idle for longer than the others had: still open
    assert "Traceback" not in daemon.log()


def test_an_idle_connection_is_closed_and_the_client_comes_back(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """``RPCIdleTimeout: 1``: an authenticated connection idle for a second is closed;
    ``mirrorbits-ctl edit`` whose editor took longer connects again to save."""
    from tests.integration.amp_wire import encode_box, read_box

    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    values = base_config(repo, redis_server.address, RPCPassword=PASSWORD, RPCIdleTimeout="1")
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    daemon.start()
    try:
        with socket.create_connection(daemon.rpc, timeout=10) as admin:
            admin.sendall(encode_box({b"_command": b"Ping", b"_ask": b"1",
                                      b"password": PASSWORD.encode()}))
            assert error_code(read_box(admin)) == ""
            started = time.monotonic()
            assert admin.recv(1) == b""
            assert 0.5 < time.monotonic() - started < 5
        assert daemon.ctl("add", "-http", "http://127.0.0.32/", "oslo").returncode == 0
        editor = tmp_path / "slow-editor"
        editor.write_text("#!/bin/sh\nsleep 2.5\n"
                          "sed -i 's/^CountryCodes:.*/CountryCodes: NO/' \"$1\"\n")
        editor.chmod(0o755)
        edited = daemon.ctl("edit", "oslo", env={"EDITOR": str(editor)})
        assert (edited.returncode, edited.stderr) == (0, "")
        assert "Mirror 'oslo' edited successfully" in edited.stdout
        assert redis_db.hget("MIRROR_1", "countryCodes") == "NO"
    finally:
        daemon.stop()
