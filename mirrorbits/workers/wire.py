"""What passes between the daemon and a worker: descriptors, the serving message, log lines."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from twisted.logger import LogLevel

LISTEN_FD = 3  # the worker's copy of the HTTP listening socket
REPORT_FD = 4  # the worker writes SERVING here once it accepts connections
SERVING = b"serving\n"
COMMAND_FD = 5  # the daemon writes ASK_COUNTS here; the worker answers on REPORT_FD
ASK_COUNTS = b"counts\n"  # answered with one mirrorbits.metrics.merge.encode line
CHANGING = b"changing "  # + JSON [kind, argument]: a ChangingPaths.forward, for the workers
#: The kind of a CHANGING line carrying the daemon's held-down set (mirrorbits.helddown),
#: sent at each change and to each new worker.
HELD_DOWN = "held_down"
WORKER_MODULE = "mirrorbits.workers"  # ``python -m`` this to start a worker
#: The daemon's pid, in the worker's environment: the worker stops once it is no longer its
#: parent. Not ``os.getppid()`` read at the worker's start: a daemon that died meanwhile
#: (a stop during the start-up) has left it to init already, and it would serve forever.
DAEMON_PID_ENV = "MIRRORBITS_DAEMON_PID"


def daemon_pid(env: MutableMapping[str, str], parent: int) -> int:
    """The pid of the daemon that started this worker (taken out of ``env``); ``parent``
    (``os.getppid()``) when the variable is missing or invalid."""
    text = env.pop(DAEMON_PID_ENV, "")
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else parent


#: After a log line's level: the line is about what every process shares (Redis), so the
#: daemon and the other workers may say the same (see :mod:`mirrorbits.workers.echo`).
SHARED = "*"


def log_line(level: LogLevel, text: str, shared: bool = False) -> str:
    """One line of a worker's log as it writes it on its standard output."""
    return f"{level.name}{SHARED if shared else ''} {text}\n"


def parse_log_line(line: str) -> tuple[LogLevel, str]:
    """The level and text of a line written by :func:`log_line` (info when unmarked)."""
    level, _, text = parse_worker_line(line)
    return level, text


def parse_worker_line(line: str) -> tuple[LogLevel, bool, str]:
    """The level, whether it is about what every process shares, and the text of a line
    written by :func:`log_line` (info, not shared, when unmarked)."""
    name, _, text = line.partition(" ")
    try:
        return LogLevel.levelWithName(name.removesuffix(SHARED)), name.endswith(SHARED), text
    except Exception:  # InvalidLogLevelError: a line the worker did not write through us
        return LogLevel.info, False, line


#: How a worker's line saying why it cannot start begins (an error, on its stderr).
CANNOT_START = "mirrorbits worker cannot start: "


def cannot_start(why: object) -> str:
    """The line (without its newline) saying why a worker cannot start: an error for the
    daemon, which says it once however many replacements fail the same way."""
    return log_line(LogLevel.error, f"{CANNOT_START}{why}").rstrip("\n")


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
