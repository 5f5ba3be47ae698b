"""Seamless binary upgrade: hand the HTTP socket to a fresh process, then quit.

The old process closes its control listener, starts a successor with the same command line
and gives it a duplicate of the HTTP listening socket (``OLD_FD``, ``OLD_PPID``) and of the
metrics one (``MIRRORBITS_METRICS_FD``). The successor serves on those sockets and, 100 ms
after start, sends ``SIGQUIT`` to its parent, which stops listening, lets open HTTP and
metrics connections finish (up to 5 s) and stops normally.

twistd's pid file: the successor runs with ``--pidfile=`` (twistd would refuse to start
while the file names the live parent, and the parent's twistd deletes it at exit); its path
travels in ``MIRRORBITS_PIDFILE`` and the successor writes its own pid there once the parent
is gone.
"""

from __future__ import annotations

from mirrorbits.upgrade.handover import (
    ENV_FD,
    ENV_METRICS_FD,
    ENV_NAME,
    ENV_NODE_ID,
    ENV_PIDFILE,
    ENV_PPID,
    TWISTD_DEFAULT_PIDFILE,
    Inheritance,
    UpgradeError,
    inheritance_from_env,
    listener_name,
    log_file_option,
    parent_gone,
    remove_pid_file,
    share_log_file,
    spawn_successor,
    successor_command,
    successor_env,
    twistd_successor_command,
    write_pid_file,
)
from mirrorbits.upgrade.listening import (
    POLL_INTERVAL,
    READY_TIMEOUT,
    ConnectionTracker,
    Drainable,
    HeldListener,
    keep_socket_file,
    ready_within,
)
from mirrorbits.upgrade.process import (
    DRAIN_TIMEOUT,
    IDLE_GRACE,
    QUIT_DELAY,
    Successor,
    Upgrader,
    upgrade_hook,
)

__all__ = [
    "DRAIN_TIMEOUT",
    "ENV_FD",
    "ENV_METRICS_FD",
    "ENV_NAME",
    "ENV_NODE_ID",
    "ENV_PIDFILE",
    "ENV_PPID",
    "IDLE_GRACE",
    "POLL_INTERVAL",
    "QUIT_DELAY",
    "READY_TIMEOUT",
    "TWISTD_DEFAULT_PIDFILE",
    "ConnectionTracker",
    "Drainable",
    "HeldListener",
    "Inheritance",
    "Successor",
    "UpgradeError",
    "Upgrader",
    "inheritance_from_env",
    "keep_socket_file",
    "listener_name",
    "log_file_option",
    "parent_gone",
    "ready_within",
    "remove_pid_file",
    "share_log_file",
    "spawn_successor",
    "successor_command",
    "successor_env",
    "twistd_successor_command",
    "upgrade_hook",
    "write_pid_file",
]
