"""``mirrorbits-ctl -a`` without a terminal (cron, a pipe): no Python warning lines."""

from __future__ import annotations

import subprocess
import sys

from tests.servers import env_without_proxies, free_port


def test_a_password_piped_without_a_terminal_gives_no_python_warning() -> None:
    port = free_port()  # nothing listens there: the password is asked for before connecting
    done = subprocess.run(
        [sys.executable, "-m", "mirrorbits.ctl", "-h", "127.0.0.1", "-p", str(port), "-a",
         "list"],
        input=b"secret\n", capture_output=True, timeout=60, start_new_session=True,
        env=env_without_proxies())
    stderr = done.stderr.decode()
    assert "GetPassWarning" not in stderr and "getpass.py" not in stderr, stderr
    assert stderr.endswith(f"rpc: cannot connect to the daemon at 127.0.0.1:{port}: "
                           "connection refused\n"), stderr
    assert done.returncode == 1
