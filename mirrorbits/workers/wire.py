"""What passes between the daemon and a worker: descriptors, the serving message, log lines."""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import LogLevel

LISTEN_FD = 3  # the worker's copy of the HTTP listening socket
REPORT_FD = 4  # the worker writes SERVING here once it accepts connections
SERVING = b"serving\n"
COMMAND_FD = 5  # the daemon writes ASK_COUNTS here; the worker answers on REPORT_FD
ASK_COUNTS = b"counts\n"  # answered with one mirrorbits.metrics.merge.encode line
CHANGING = b"changing "  # + JSON [kind, argument]: a ChangingPaths.forward, for the workers
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


def changing_line(kind: str, argument: Any) -> bytes:
    """The command line telling the workers what the repository watch marked or released."""
    return CHANGING + json.dumps([kind, argument]).encode("ascii") + b"\n"


def parse_changing(line: bytes) -> tuple[str, Any] | None:
    """The kind and argument of a :func:`changing_line` (without its newline); None if it
    is not one."""
    if not line.startswith(CHANGING):
        return None
    try:
        kind, argument = json.loads(line[len(CHANGING):])
    except ValueError:
        return None
    return (kind, argument) if isinstance(kind, str) else None
