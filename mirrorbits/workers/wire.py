"""What passes between the daemon and a worker: descriptors, the serving message, log lines."""

from __future__ import annotations

from twisted.logger import LogLevel

LISTEN_FD = 3  # the worker's copy of the HTTP listening socket
REPORT_FD = 4  # the worker writes SERVING here once it accepts connections
SERVING = b"serving\n"
COMMAND_FD = 5  # the daemon writes ASK_COUNTS here; the worker answers on REPORT_FD
ASK_COUNTS = b"counts\n"  # answered with one mirrorbits.metrics.merge.encode line
WORKER_MODULE = "mirrorbits.workers"  # ``python -m`` this to start a worker


def log_line(level: LogLevel, text: str) -> str:
    """One line of a worker's log as it writes it on its standard output."""
    return f"{level.name} {text}\n"


def parse_log_line(line: str) -> tuple[LogLevel, str]:
    """The level and text of a line written by :func:`log_line` (info when unmarked)."""
    name, _, text = line.partition(" ")
    try:
        return LogLevel.levelWithName(name), text
    except Exception:  # InvalidLogLevelError: a line the worker did not write through us
        return LogLevel.info, line
