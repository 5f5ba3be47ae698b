"""The ``repr`` of the services Twisted formats on the way: short, whatever they hold.

Twisted's ``spawnProcess`` checks each signal's handler against :class:`signal.Handlers`,
which formats the ``repr`` of a bound-method handler, hence of the daemon and, through attrs'
``repr``, of every service it holds. With the cache's records and its message counters in
that ``repr`` each rsync scan spent seconds there, and a stop waited for them.
"""

from __future__ import annotations

import time

from twisted.internet.task import Clock

from mirrorbits.cache import MirrorCache
from mirrorbits.model import FileInfo


def test_the_caches_repr_is_a_summary_however_much_it_holds() -> None:
    cache = MirrorCache(lambda: None, Clock())  # type: ignore[arg-type, return-value]
    for index in range(10_000):
        path = f"/f/{index}.iso"
        cache.files.put(path, (FileInfo(path=path, size=index), 0.0))
    started = time.process_time()
    text = repr(cache)
    assert time.process_time() - started < 0.01
    assert text == "<MirrorCache: 10000 files, 0 mirrors, 0 file-on-mirror records>"


def test_a_bound_method_handler_of_the_daemon_is_formatted_without_its_services() -> None:
    from mirrorbits.daemon import Daemon

    handler = object.__new__(Daemon)._on_sighup  # no service needed to name the object
    text = repr(handler)
    assert text.startswith("<bound method Daemon._on_sighup of <mirrorbits.daemon.Daemon object")
