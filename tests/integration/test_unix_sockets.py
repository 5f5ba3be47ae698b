"""UNIX socket listeners of the real daemon: who may connect, before and after an upgrade."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.daemon import DaemonProcess, base_config, repo_file
from tests.servers import RedisServer


def unix_get(path: Path, target: str = "/a.txt") -> int | None:
    """The status of GET ``target`` over the UNIX socket ``path`` (None if nothing answers)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(f"GET {target} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return None
    return int(head.split()[1]) if head else None


def mode_of(path: Path) -> int:
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode)
    return stat.S_IMODE(info.st_mode)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_control_socket_is_private_and_http_socket_open_to_the_proxy(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis, workers: str) -> None:
    control, http = tmp_path / "control.sock", tmp_path / "http.sock"
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    daemon = DaemonProcess(
        workdir=tmp_path / "run",
        values=base_config(repo, redis_server.address, ListenAddress=f"unix:{http}",
                           RPCListenAddress=f"unix:{control}", Workers=workers),
        args=["--no-monitor"], new_session=True)
    old_umask = os.umask(0o000)  # the most permissive umask the daemon could inherit
    try:
        daemon.start()
    finally:
        os.umask(old_umask)
    assert daemon.process is not None
    group = daemon.process.pid
    try:
        if workers != "1":  # the socket accepts before they serve
            daemon.wait_log(f"HTTP served by {workers} worker processes", timeout=40)
        assert mode_of(control) == 0o600
        assert mode_of(http) == 0o666
        listed = daemon.ctl("list")
        assert listed.returncode == 0, listed.stderr
        assert unix_get(http) in (302, 503)  # answered (no mirror yet: no fallback either)

        # The successor of a seamless upgrade opens the control socket again, and serves
        # HTTP on the inherited socket: both keep their modes.
        old = daemon.process
        daemon.signal(signal.SIGUSR2)
        assert old.wait(20) == 0
        wait_until(lambda: daemon.ctl("list").returncode == 0, 20, "the new control socket")
        assert mode_of(control) == 0o600
        assert mode_of(http) == 0o666
        assert unix_get(http) in (302, 503)
        assert "Traceback" not in daemon.log(), daemon.log()
    finally:
        daemon.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not control.exists(), 15, "the successor to stop")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    assert not control.exists() and not http.exists()  # removed by the process that stopped
