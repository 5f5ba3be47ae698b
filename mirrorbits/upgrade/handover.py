"""What passes from the old process to its successor: environment, command line, pid file."""

from __future__ import annotations

import contextlib
import fcntl
import getopt
import os
import socket
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

from attrs import frozen

from mirrorbits.logs import Logger

ENV_FD = "OLD_FD"
ENV_NAME = "OLD_NAME"
ENV_PPID = "OLD_PPID"
ENV_PIDFILE = "MIRRORBITS_PIDFILE"
# The metrics listening socket (ours, not the reference's: it has no metrics listener).
ENV_METRICS_FD = "MIRRORBITS_METRICS_FD"
# The cluster node ID, kept by the successor: the node stays one node through an upgrade.
ENV_NODE_ID = "MIRRORBITS_NODE_ID"
TWISTD_DEFAULT_PIDFILE = "twistd.pid"

log = Logger()


class UpgradeError(Exception):
    """An upgrade that could not start; the message is for the operator."""


@frozen
class Inheritance:
    """What a successor received from the process that started it."""

    fd: int
    ppid: int
    pidfile: str | None
    metrics_fd: int | None = None  # the metrics listener's socket, if the parent had one
    node_id: str | None = None  # the parent's cluster node ID


def inheritance_from_env(env: Mapping[str, str], parent_pid: int) -> Inheritance | None:
    """The inherited socket, honoured only when ``OLD_PPID`` is our actual parent.

    A stale ``OLD_FD`` left in an operator's shell must not make a fresh start adopt
    whatever descriptor happens to carry that number.
    """
    try:
        fd = int(env[ENV_FD])
        ppid = int(env[ENV_PPID])
    except (KeyError, ValueError):
        return None
    if fd < 3 or ppid <= 1 or ppid != parent_pid:
        return None
    try:
        metrics_fd: int | None = int(env[ENV_METRICS_FD])
    except (KeyError, ValueError):
        metrics_fd = None
    if metrics_fd is not None and (metrics_fd < 3 or metrics_fd == fd):
        metrics_fd = None
    return Inheritance(fd=fd, ppid=ppid, pidfile=env.get(ENV_PIDFILE) or None,
                       metrics_fd=metrics_fd, node_id=env.get(ENV_NODE_ID) or None)


def successor_command(
    executable: str, argv: Sequence[str], short_opts: str, long_opts: Sequence[str]
) -> tuple[list[str], str | None]:
    """The successor's command line and the pid file named by ``argv`` (None if disabled).

    ``argv`` is twistd's (``argv[0]`` the twistd script); its options are parsed the way
    twistd parses them (getopt, abbreviations included), ``--pidfile`` is dropped and
    ``--pidfile=`` added; the subcommand and everything after it are kept as they are.
    Without ``--pidfile`` twistd uses ``twistd.pid``.
    """
    try:
        options, rest = getopt.getopt(list(argv[1:]), short_opts, list(long_opts))
    except getopt.GetoptError as err:
        raise UpgradeError(f"cannot parse the command line: {err}") from None
    pidfile: str | None = TWISTD_DEFAULT_PIDFILE
    rebuilt: list[str] = []
    for option, value in options:
        if option == "--pidfile":
            pidfile = value or None
        elif option.startswith("--"):
            rebuilt.append(f"{option}={value}" if option[2:] + "=" in long_opts else option)
        elif option[1] + ":" in short_opts:
            rebuilt += [option, value]
        else:
            rebuilt.append(option)
    return [executable, argv[0], *rebuilt, "--pidfile=", *rest], pidfile


def log_file_option(argv: Sequence[str], short_opts: str, long_opts: Sequence[str]) -> str | None:
    """The ``--logfile``/``-l`` value in twistd's ``argv`` (None when absent or ``-``)."""
    try:
        options, _ = getopt.getopt(list(argv[1:]), short_opts, list(long_opts))
    except getopt.GetoptError:
        return None
    path = None
    for option, value in options:
        if option in ("--logfile", "-l"):
            path = value
    return None if path in (None, "", "-") else path


def _twistd_table() -> tuple[str, list[str]]:
    from twisted.scripts._twistd_unix import ServerOptions

    table = ServerOptions()
    return table.shortOpt, table.longOpt


def twistd_successor_command(executable: str, argv: Sequence[str]) -> tuple[list[str], str | None]:
    """:func:`successor_command` with twistd's own option table."""
    return successor_command(executable, argv, *_twistd_table())


def share_log_file(argv: Sequence[str], cwd: str) -> int:
    """Put our descriptors on twistd's log file in append mode; how many there were.

    twistd opens its log file without ``O_APPEND``: while the old and the new process both
    write to it, each would overwrite the other's lines. Linux only (``/proc/self/fd``).
    """
    path = log_file_option(argv, *_twistd_table())
    if path is None:
        return 0
    target = os.path.realpath(os.path.join(cwd, path))
    count = 0
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") != target:
                    continue
                fd = int(name)
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
            except (OSError, ValueError):
                continue
            count += 1
    return count


def listener_name(fd: int) -> str:
    """``OLD_NAME`` as the reference sets it (informational only): the bound address."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        name = sock.getsockname()
    finally:
        sock.close()
    if isinstance(name, str | bytes):
        return f"unix:{os.fsdecode(name)}->"
    host = f"[{name[0]}]" if ":" in name[0] else name[0]
    return f"tcp:{host}:{name[1]}->"


def successor_env(
    base: Mapping[str, str], fd: int, name: str, pid: int, pidfile: str | None,
    metrics_fd: int | None = None,
) -> dict[str, str]:
    """The successor's environment: ours plus the hand-over variables."""
    env = dict(base)
    env[ENV_FD] = str(fd)
    env[ENV_NAME] = name
    env[ENV_PPID] = str(pid)
    if pidfile:
        env[ENV_PIDFILE] = pidfile
    else:
        env.pop(ENV_PIDFILE, None)
    if metrics_fd is not None:
        env[ENV_METRICS_FD] = str(metrics_fd)
    else:
        env.pop(ENV_METRICS_FD, None)
    return env


def write_pid_file(path: str, pid: int) -> None:
    """Replace ``path`` atomically with ``pid`` (mode 0644, no newline)."""
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(prefix=".pid-", dir=directory)
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(str(pid))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_pid_file(path: str, pid: int) -> bool:
    """Delete ``path`` if it still names ``pid``; whether it was deleted."""
    try:
        with open(path) as stream:
            content = stream.read().strip()
    except OSError:
        return False
    if content != str(pid):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def parent_gone(ppid: int, direct_child: bool) -> bool:
    """Whether process ``ppid`` has exited.

    A direct child sees it first by being re-parented (an exited parent may linger as a
    zombie, which ``kill(pid, 0)`` still finds); otherwise ``kill(pid, 0)`` decides.
    """
    if direct_child and os.getppid() != ppid:
        return True
    try:
        os.kill(ppid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def spawn_successor(command: list[str], cwd: str, env: Mapping[str, str],
                    listener_fd: int, name: str, pidfile: str | None,
                    metrics_fd: int | None = None) -> subprocess.Popen[bytes]:
    """Start the successor with duplicates of ``listener_fd`` (and of ``metrics_fd``, the
    metrics listener's socket) at the same numbers."""
    duplicates = [os.dup(fd) for fd in (listener_fd, metrics_fd) if fd is not None]
    try:
        for duplicate in duplicates:
            os.set_inheritable(duplicate, True)
        child_env = successor_env(env, duplicates[0], name, os.getpid(), pidfile,
                                  duplicates[1] if len(duplicates) > 1 else None)
        return subprocess.Popen(command, cwd=cwd, env=child_env, pass_fds=duplicates)
    finally:
        for duplicate in duplicates:
            os.close(duplicate)
