"""The reactor interfaces services are typed with, where one needs several of Twisted's.

Twisted's own reactors provide every one of them; the global reactor is typed with a
narrower interface, so the entry points take it through :func:`default_reactor`.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.interfaces import (
    IReactorCore,
    IReactorFDSet,
    IReactorPluggableNameResolver,
    IReactorProcess,
    IReactorSocket,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
)


class IConnectingReactor(IReactorTime, IReactorTCP, IReactorPluggableNameResolver):
    """Opens TCP connections by host name, with timeouts (Redis, HTTP, FTP clients)."""


class IProcessReactor(IReactorTime, IReactorProcess):
    """Runs child processes, with timeouts (rsync, redis-server)."""


class IThreadReactor(IReactorTime, IReactorThreads):
    """Runs blocking work in its thread pool (the local scan, GeoIP lookups)."""


class IWatchReactor(IThreadReactor, IReactorFDSet):
    """Reads a file descriptor (inotify) and hashes in its thread pool (the watcher)."""


class ICommandReactor(IReactorCore, IConnectingReactor):
    """Runs a command-line client to its end (``mirrorbits-ctl``)."""


class IScanReactor(IConnectingReactor, IProcessReactor):
    """Runs children and connects: lists mirrors (rsync children, FTP and HTTP connections),
    runs the private redis-server and configures it."""


class IDaemonReactor(IReactorCore, IScanReactor, IWatchReactor, IReactorSocket):
    """Everything the daemon's service tree uses, listening on adopted sockets included."""


def default_reactor() -> IDaemonReactor:
    """The global reactor (installed by twistd or on first import)."""
    from twisted.internet import reactor

    return cast(IDaemonReactor, reactor)
