"""Stopping a local scan cleanly: between steps, in its sleeps, and in the walking threads."""

from __future__ import annotations

import threading

from attrs import Factory, define
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from mirrorbits.scan.walk import ScanAborted

__all__ = ["Abort"]


@define(eq=False)
class Abort:
    """Stops a scan cleanly: checked between steps, wakes sleeps, seen by the threads."""

    clock: IReactorTime
    event: threading.Event = Factory(threading.Event)
    _sleeps: set[Deferred[None]] = Factory(set)

    def abort(self) -> None:
        self.event.set()
        for sleep in list(self._sleeps):
            sleep.cancel()

    def check(self) -> None:
        if self.event.is_set():
            raise ScanAborted()

    async def sleep(self, seconds: float) -> None:
        self.check()
        sleep: Deferred[None] = deferLater(self.clock, seconds)
        self._sleeps.add(sleep)
        try:
            await sleep
        except CancelledError:
            raise ScanAborted() from None
        finally:
            self._sleeps.discard(sleep)
