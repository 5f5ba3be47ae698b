"""HTTP worker processes: ``Workers: N`` runs N children of the daemon that serve HTTP.

The daemon (the main process, the one twistd runs) binds the listening socket as before and
keeps everything that must happen once per node: scans, health checks, the cluster's
announces, the control channel, the embedded redis-server, ``--demo``'s mirrors, the
upgrade. It does not accept HTTP connections itself: it starts N workers (``python -m
mirrorbits.workers`` with the daemon's ``--config``, ``--repository`` and ``--debug``)
that inherit the listening socket as descriptor 3, and restarts any that dies.

A worker reads the same configuration file and runs the HTTP side only: the cache fed by
pub/sub, GeoIP, the statistics flush (with its own once-only batch ids, so every download
is counted exactly once whichever process answered it) and the download log (appended by
every process). It says on descriptor 4 when it serves, writes its log lines to its
standard output (the daemon logs them, prefixed with the worker's pid) and exits when the
daemon is gone.

Signals: the daemon passes a successful reload (SIGHUP, ``mirrorbits-ctl reload``) on as
SIGHUP, and SIGUSR1 (reopen the logs) as SIGUSR1; SIGTERM to a worker stops its accepting,
lets its open connections finish (as an upgrade's old process does) and flushes its
counters. At stop and at an upgrade's hand-over the daemon sends SIGTERM to every worker
and waits for them; the successor's own workers serve on the same socket meanwhile.
"""

from mirrorbits.workers.count import worker_count
from mirrorbits.workers.pool import WorkerPool

__all__ = ["WorkerPool", "worker_count"]
