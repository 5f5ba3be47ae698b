"""How ``mirrorbits-ctl`` stops: :class:`Exit` (a code and what to print) and the exit codes."""

from __future__ import annotations

# Exit codes beyond usage errors (2) and failures (1).
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as if the pipe's signal had ended the process
EXIT_INTERRUPTED = 130  # 128 + SIGINT

class Exit(Exception):
    """Stop with this exit code after printing ``stdout`` and ``stderr``."""

    def __init__(self, code: int, stderr: str = "", stdout: str = "") -> None:
        super().__init__(code, stderr, stdout)
        self.code = code
        self.stderr = stderr
        self.stdout = stdout


def fail(message: str, code: int = 1) -> Exit:
    """A failure: ``message`` (one line added) on stderr."""
    return Exit(code, message.rstrip("\n") + "\n")
