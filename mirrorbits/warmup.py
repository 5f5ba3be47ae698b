"""Filling an HTTP process' cache at start-up, so that its first requests are answered from
memory instead of each reading Redis (the warm-up stall of docs/performance.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from mirrorbits.cache import MirrorCache
from mirrorbits.logs import Logger
from mirrorbits.store import outage

WARM_HOLD = 60.0  # seconds a fresh start waits for its cache before accepting anyway

log = Logger()


@define(eq=False)
class CacheWarmer:
    """Runs :meth:`MirrorCache.warm` once Redis is ready and pub/sub subscribed (``ready``:
    what the fill reads is then corrected by every later message), again after each pub/sub
    reconnection (:meth:`MirrorCache.suspect_all`: read again in place), one fill at a
    time."""

    cache: MirrorCache
    ready: Callable[[], Deferred[None]]  # fires when Redis can be read and pub/sub listens
    clock: IReactorTime
    then: Callable[[], Awaitable[int]] | None = None  # after a fill: the memos built (count)
    _waiters: list[Deferred[None]] = field(factory=list)
    _running: bool = False
    _again: bool = False
    _filled_before: bool = False

    def start(self) -> None:
        """Fill the cache now, or after the fill that is running."""
        if self._running:
            self._again = True
            return
        self._running = True
        self.ready().addCallback(lambda _: Deferred.fromCoroutine(self._fill()))

    async def _fill(self) -> None:
        while True:
            self._again = False
            started = self.clock.seconds()
            if not self._filled_before:
                self._filled_before = True
                if self.cache.holds_anything():
                    # Requests read Redis before pub/sub was subscribed (the hold gave up
                    # waiting): a change published then would never correct what they put.
                    self.cache.suspect_all()
            try:
                count = await self.cache.warm()
            except Exception:
                outage.report(log, "Cache warm-up", Failure(),
                              "Filling the cache from the database failed; it fills on demand")
            else:
                memos = 0
                if self.then is not None:
                    try:
                        memos = await self.then()
                    except Exception:
                        outage.report(log, "Cache warm-up", Failure(),
                                      "Building the files' selections failed")
                log.info("Cache filled with {count} files in {seconds:.1f}s ({memos} "
                         "selections ready)", count=count, memos=memos,
                         seconds=self.clock.seconds() - started)
            if not self._again:
                break
        self._running = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def filled_within(self, timeout: float) -> Deferred[None]:
        """Fires when the running fill is done, or after ``timeout`` seconds (logged)."""
        done: Deferred[None] = Deferred()
        if not self._running:
            done.callback(None)
            return done

        def late() -> None:
            if not done.called:
                self._waiters.remove(done)
                log.warn("The cache is not filled after {timeout:.0f}s: serving anyway",
                         timeout=timeout)
                done.callback(None)

        call = self.clock.callLater(timeout, late)

        def cancel_timer(result: None) -> None:
            if call.active():
                call.cancel()

        done.addCallback(cancel_timer)
        self._waiters.append(done)
        return done
