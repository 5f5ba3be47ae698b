"""``MirmonExportFile``: the service that keeps the Mirmon list in a file while mirrors change.

The file is rewritten (:func:`~mirrorbits.files.replace_file`) at start, a moment after each
``_mirrorbits_mirror_update`` (changes in a burst are written once), after a reload, and every
:data:`REFRESH_INTERVAL` in case a message was missed; only when its text changed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Final

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool

from mirrorbits.config import Config
from mirrorbits.configcheck import export_dir_problem
from mirrorbits.files import replace_file
from mirrorbits.logs import Logger
from mirrorbits.mirmon import mirmon_list
from mirrorbits.model import Mirror
from mirrorbits.reactors import IThreadReactor
from mirrorbits.store.errors import REDIS_FAILURES, DatabaseNotReady
from mirrorbits.ticking import start_loop, stop_loop

__all__ = ["DEBOUNCE", "REFRESH_INTERVAL", "MirmonExport"]

log = Logger(namespace="mirrorbits.mirmon")

#: Seconds between a mirror change and the file's update (a burst of changes: one write).
DEBOUNCE: Final = 1.0
#: Seconds between two looks without any change announced.
REFRESH_INTERVAL: Final = 60.0


# What stands for the failure to write into a directory the configuration check named.
SAID_BY_CHECK: Final = "the directory, said by the configuration check"


@define(eq=False)
class MirmonExport(Service):
    """Keeps ``MirmonExportFile`` holding the Mirmon list of every mirror (one per node)."""

    _get_config: Callable[[], Config]
    _all_mirrors: Callable[[], Awaitable[list[Mirror]]]
    _reactor: IThreadReactor
    #: ``write(path, text)``; default: :func:`replace_file` in the reactor's thread pool.
    _write: Callable[[str, str], Awaitable[None]] | None = None
    _written: tuple[str, str] | None = field(default=None, init=False)  # (path, text)
    _pending: IDelayedCall | None = field(default=None, init=False)
    _running: Deferred[None] | None = field(default=None, init=False)
    _again: bool = field(default=False, init=False)
    _failure: str = field(default="", init=False)  # the last error logged
    _loop: LoopingCall | None = field(default=None, init=False)

    name = "mirmon-export"

    def startService(self) -> None:
        super().startService()
        self._loop = start_loop(self.changed, self._reactor, REFRESH_INTERVAL, now=True)

    def stopService(self) -> None:
        super().stopService()
        stop_loop(self._loop)
        self._loop = None
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    def mirror_changed(self, message: str) -> None:
        """A ``_mirrorbits_mirror_update`` message."""
        self.changed()

    def changed(self) -> None:
        """Write the file soon (once for a burst of calls)."""
        if not self.running or not self._get_config().mirmon_export_file:
            return
        if self._pending is None or not self._pending.active():
            self._pending = self._reactor.callLater(DEBOUNCE, self.refresh)

    def refresh(self) -> Deferred[None]:
        """Write the file now if its text changed (after the write under way, if any)."""
        if self._running is not None:
            self._again = True
            return self._running
        self._running = Deferred.fromCoroutine(self._refresh())

        def done(result: object) -> None:
            self._running = None
            if self._again:
                self._again = False
                self.changed()

        self._running.addBoth(done)
        return self._running

    async def _refresh(self) -> None:
        path = self._get_config().mirmon_export_file
        if not path:
            return
        try:
            text = mirmon_list(await self._all_mirrors())
            if self._written == (path, text) and os.path.exists(path):
                return
            if self._write is not None:
                await self._write(path, text)
            else:
                await deferToThreadPool(self._reactor, self._reactor.getThreadPool(),
                                        replace_file, path, text)
        except DatabaseNotReady:
            self._again = True  # looked at again in a moment
            return
        except OSError as err:  # the temporary file's name left out: it changes every time
            if (self._written is None and self._failure in ("", SAID_BY_CHECK)
                    and export_dir_problem(path)):
                self._failure = SAID_BY_CHECK  # at start, by the configuration check
                return
            self._report(f"MirmonExportFile {path!r} not updated: {err.strerror or err}")
            return
        except REDIS_FAILURES as err:
            self._report(f"MirmonExportFile {path!r} not updated: {err or type(err).__name__}")
            return
        except Exception:
            log.failure("MirmonExportFile {path!r} not updated", path=path)
            return
        self._written = (path, text)
        if self._failure:
            log.info("MirmonExportFile {path!r} updated again", path=path)
        self._failure = ""
        log.debug("MirmonExportFile {path!r} updated", path=path)

    def _report(self, message: str) -> None:
        """Log a failure once until it changes or the file is written again."""
        if message != self._failure:
            log.warn("{message}", message=message)
        self._failure = message
