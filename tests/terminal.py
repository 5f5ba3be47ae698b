"""Running a program on a real pseudo-terminal, as an operator's shell would.

The program is a session leader whose controlling terminal is the pty, so typing Ctrl-C
(``\\x03``) sends SIGINT to its foreground process group, as in a shell.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence

import attrs

from tests.servers import env_without_proxies

CTRL_C = b"\x03"


@attrs.frozen
class TerminalRun:
    """What the terminal showed (raw bytes, ``\\r\\n`` line ends), stderr and exit code."""

    screen: bytes
    stderr: str
    returncode: int

    @property
    def text(self) -> str:
        return self.screen.decode("utf-8", "replace")

    def final_lines(self) -> list[str]:
        """The lines as they look once every carriage return has rewritten its line."""
        lines = []
        for raw in self.text.replace("\r\n", "\n").split("\n"):
            line = ""
            for part in raw.split("\r"):
                line = part + line[len(part):]
            lines.append(line.rstrip(" "))
        return lines


@attrs.define
class Terminal:
    """The running program and the keyboard of its terminal."""

    process: subprocess.Popen[bytes]
    master: int
    screen: bytearray = attrs.Factory(bytearray)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)


def _take_terminal() -> None:
    """In the child, after ``setsid``: make stdin (the pty) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_on_terminal(
    argv: Sequence[str],
    columns: int = 200,
    timeout: float = 120.0,
    on_output: Callable[[Terminal], None] | None = None,
    env: dict[str, str] | None = None,
) -> TerminalRun:
    """Run ``argv`` with stdin and stdout on a new pty (stderr on a pipe) until it exits.

    ``on_output(terminal)`` is called after each read (to type something, say); ``env`` is
    added to the environment.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environ = env_without_proxies()
    environ.pop("COLUMNS", None)
    environ["PYTHONIOENCODING"] = "utf-8"
    environ.update(env or {})
    process = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                               env=environ, close_fds=True, start_new_session=True,
                               preexec_fn=_take_terminal)
    os.close(slave)
    terminal = Terminal(process, master)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the program closed the terminal
                break
            if not data:
                break
            terminal.screen += data
            if on_output is not None:
                on_output(terminal)
        else:
            process.send_signal(signal.SIGKILL)
            raise AssertionError(f"{argv} still running after {timeout} s: "
                                 f"{bytes(terminal.screen)!r}")
        assert process.stderr is not None
        stderr = process.stderr.read().decode("utf-8", "replace")
        returncode = process.wait(timeout)
    finally:
        os.close(master)
        if process.stderr is not None:
            process.stderr.close()
    return TerminalRun(bytes(terminal.screen), stderr, returncode)
