"""What the daemon tells a new operator: where its data lives, and what to do next.

The texts are built here from plain values (pure, apart from :func:`ctl_program` and
:func:`example_file`, which look at the file system); :class:`RootGuide` gives the text of
``/`` on the embedded configuration, remembered for a few seconds.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Awaitable, Callable

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from mirrorbits.addresses import AddressError, join_host_port, split_host_port
from mirrorbits.logs import Logger

DEFAULT_CONTROL_HOST = "localhost"
DEFAULT_CONTROL_PORT = 3390
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
EXAMPLE_NAME = "example"
EXAMPLE_ADD = ("add -http https://mirror.example.org/pub/ "
               f"-rsync rsync://mirror.example.org/pub/ {EXAMPLE_NAME}")
ROOT_MEMO_SECONDS = 2.0  # the ``/`` text is recomputed at most this often
EXAMPLE_SEARCH_LIMIT = 1000  # directory entries looked at to find an example file

log = Logger()


def ctl_program(executable: str = sys.executable, cwd: str | None = None,
                which: Callable[[str], str | None] = shutil.which) -> str:
    """How to call this installation's ``mirrorbits-ctl`` from ``cwd``.

    Its bare name when ``PATH`` finds this very one; else its path, relative when it lies
    below ``cwd`` (``.venv/bin/mirrorbits-ctl`` after ``.ci/setup``).
    """
    candidate = os.path.join(os.path.dirname(executable), "mirrorbits-ctl")
    if not os.path.exists(candidate):
        return "mirrorbits-ctl"
    found = which("mirrorbits-ctl")
    if found is not None and os.path.realpath(found) == os.path.realpath(candidate):
        return "mirrorbits-ctl"
    relative = os.path.relpath(candidate, cwd)
    return relative if not relative.startswith("..") else candidate


def ctl_command(program: str, rpc_listen_address: str, password_set: bool) -> str:
    """``mirrorbits-ctl`` with the global flags that reach a daemon on ``rpc_listen_address``.

    The password is never written out: ``-P <RPCPassword>`` stands for it.
    """
    words = [program]
    if rpc_listen_address.startswith("unix:"):
        words += ["-h", rpc_listen_address]
    else:
        try:
            host, port = split_host_port(rpc_listen_address)
        except AddressError:
            host, port = DEFAULT_CONTROL_HOST, DEFAULT_CONTROL_PORT
        if host not in WILDCARD_HOSTS and host != DEFAULT_CONTROL_HOST:
            words += ["-h", host]
        if port != DEFAULT_CONTROL_PORT:
            words += ["-p", str(port)]
    if password_set:
        words += ["-P", "<RPCPassword>"]
    return " ".join(words)


def http_base(listen_address: str) -> str:
    """Where a person on this machine reaches the HTTP listener (``http://host:port``)."""
    if listen_address.startswith("unix:"):
        return listen_address
    try:
        host, port = split_host_port(listen_address, min_port=0)
    except AddressError:
        return listen_address
    return "http://" + join_host_port("localhost" if host in WILDCARD_HOSTS else host, port)


def embedded_lines(repository: str, http: str, control: str, redis: str,
                   redis_address: str | None) -> list[str]:
    """The start-up lines of the embedded configuration: what is served, where the data is.

    ``redis_address``: the private server's address, that another node may be given.
    """
    lines = [
        f"Embedded configuration (no configuration file): serving {repository}, "
        f"HTTP on {http}, control channel on {control}",
        f"Redis: {redis}",
    ]
    if redis_address is not None:
        lines[-1] += (f". Run again from this directory (or with the same --data-dir) to find "
                      f"the same data; another node reaches it with RedisAddress: {redis_address}")
    return lines


def no_mirror_hint(ctl: str, repository: str, root_url: str | None, demo_hint: bool) -> str:
    """The log line of a start without any mirror: the commands that add the first one."""
    text = (f"No mirror is registered yet: add one that carries a copy of {repository} "
            f"(scanned over rsync or FTP, then checked over HTTP): {ctl} {EXAMPLE_ADD}, "
            f"then {ctl} scan -enable {EXAMPLE_NAME}")
    if demo_hint:
        text += "; or restart with --demo to see two local mirrors at work"
    if root_url is not None:
        text += f". {root_url}/ says more"
    return text


def root_text(*, repository: str, redis: str, ctl: str, mirrors: int | None,
              example: str | None, demo: bool, indexed: bool = True) -> str:
    """The body of ``/`` on the embedded configuration (sent with its 503).

    ``mirrors``: how many are registered (None: Redis cannot tell now); ``example``: the path
    of a file of the repository to try; ``indexed``: whether the repository's first index
    is done (mirrors can be scanned only then).
    """
    if mirrors is None:
        count = "unknown: the database is not ready (see the daemon's log)"
    elif mirrors == 0:
        count = "none registered yet"
    else:
        count = f"{mirrors} registered ({ctl} list shows their state)"
    lines = [
        "Service Unavailable",
        "",
        "This is mirrorbits, running on its embedded configuration (no configuration file).",
        "It answers a request for a file of the repository with a redirect to a mirror that",
        'holds the same file; "/" is a directory, which is never redirected.',
        "",
        f"Repository: {repository}" + ("" if indexed else " (being indexed: a mirror can be "
                                          "scanned once this is done)"),
        f"Redis:      {redis}",
        f"Mirrors:    {count}",
        "",
    ]
    if demo:
        lines += ["Demo: mirrors demo-a (127.0.0.2) and demo-b (127.0.0.3) serve this",
                  "repository from this process; stop it and start without --demo to keep",
                  "your own mirrors in a separate database.", ""]
    if mirrors == 0:
        lines += [
            "Next, register a mirror that carries a copy of the repository: it is scanned over",
            "rsync (or FTP) to learn which files it holds, then health-checked over HTTP.",
            f"  {ctl} {EXAMPLE_ADD}",
            f"  {ctl} scan -enable {EXAMPLE_NAME}",
            "Or restart with --demo to watch two local mirrors serve this repository.",
        ]
    elif example is not None:
        lines += [
            f"Ask for a file: {example} is redirected to a mirror that holds it, and",
            f"{example}?mirrorlist shows which mirrors can serve it and why the others cannot.",
        ]
    lines += ['The README\'s "Managing mirrors" section has the rest.']
    return "\n".join(lines)


def example_file(repository: str, limit: int = EXAMPLE_SEARCH_LIMIT) -> str | None:
    """The path (``/a/b``) of a regular file of the repository, looked for breadth-first in
    name order among at most ``limit`` entries; hidden names are skipped."""
    pending = [""]
    seen = 0
    while pending and seen < limit:
        relative = pending.pop(0)
        try:
            with os.scandir(os.path.join(repository, relative)) as entries:
                names = sorted((entry.name, entry.is_file(), entry.is_dir(follow_symlinks=False))
                               for entry in entries if not entry.name.startswith("."))
        except OSError:
            continue
        for name, is_file, is_dir in names[:limit - seen]:
            seen += 1
            path = os.path.join(relative, name)
            if is_file:
                return "/" + path
            if is_dir:
                pending.append(path)
    return None


@define(eq=False)
class RootGuide:
    """The text of ``/`` on the embedded configuration, recomputed at most every
    :data:`ROOT_MEMO_SECONDS` (one read of the mirror list, one short directory walk)."""

    repository: Callable[[], str]
    redis: str
    ctl: str
    demo: bool
    count_mirrors: Callable[[], Awaitable[int]]
    clock: IReactorTime
    indexed: Callable[[], bool] = lambda: True
    _memo: tuple[float, str] | None = field(default=None, init=False)

    async def text(self) -> str:
        now = self.clock.seconds()
        if self._memo is not None and now - self._memo[0] < ROOT_MEMO_SECONDS:
            return self._memo[1]
        try:
            mirrors: int | None = await self.count_mirrors()
        except Exception:
            mirrors = None
        repository = self.repository()
        example = example_file(repository) if mirrors else None
        text = root_text(repository=repository, redis=self.redis, ctl=self.ctl,
                         mirrors=mirrors, example=example, demo=self.demo,
                         indexed=self.indexed())
        self._memo = (self.clock.seconds(), text)
        return text


@define(eq=False)
class NoMirrorHint(Service):
    """Once the database is ready and the repository indexed, logs ``hint`` if no mirror is
    registered (once a start)."""

    ready: Callable[[], Deferred[None]]
    count_mirrors: Callable[[], Awaitable[int]]
    hint: str
    _waiting: Deferred[None] | None = field(default=None, init=False)
    indexed: Callable[[], Deferred[None]] = lambda: succeed(None)  # the repository's index

    def startService(self) -> None:
        super().startService()
        self._waiting = Deferred.fromCoroutine(self._check())
        self._waiting.addErrback(lambda _: None)  # stopped first, or Redis failed: no hint

    async def _check(self) -> None:
        await self.ready()
        await self.indexed()  # before that, a mirror cannot be scanned
        if await self.count_mirrors() == 0:
            log.info("{hint}", hint=self.hint)

    def stopService(self) -> None:
        super().stopService()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.cancel()
