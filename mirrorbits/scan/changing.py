"""Paths the repository watch saw change and has not published yet, in this process.

Between a file's installation in the repository and its publication (the watch's batch:
``lstat``, hashing, commit, then the cache's re-read), a redirect would be decided from the
old record, and a user sent to a mirror's copy that is no longer the origin's. The watch marks
each path as its event arrives (on the reactor, before any work); a request for a marked path
waits until the batch that looks at it has ended and the cache has read it again, at most
:data:`HOLD_AT_MOST` seconds. With HTTP workers, the daemon forwards each mark and release to
them (``forward``, over their command pipe) and each worker holds its own requests the same
way (:meth:`ChangingPaths.follow`), reading the published paths in its own cache. See
docs/freshness.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["HOLD_AT_MOST", "ChangingPaths"]

#: Seconds a request waits at most for its path's publication (a batch that cannot be
#: committed is tried again later: the request is then answered from what is known).
HOLD_AT_MOST = 2.0


@define(eq=False)
class ChangingPaths:
    """The marks: path -> how many times it was marked (a batch releases a path only if it
    was not marked again meanwhile), and the requests waiting for each."""

    _clock: IReactorTime
    #: Reads the published paths again in this process' cache (set by the HTTP side).
    reread: Callable[[list[str]], Awaitable[None]] | None = None
    #: Told each mark and release (``"mark"``, ``"release"``, ``"release_all"`` and its
    #: argument): the daemon's HTTP workers follow them (set by the worker pool's side).
    forward: Callable[[str, Any], None] | None = None
    _marks: dict[str, int] = field(factory=dict, init=False)
    _waiters: dict[str, list[tuple[Deferred[None], IDelayedCall]]] = field(factory=dict,
                                                                         init=False)

    def __bool__(self) -> bool:
        return bool(self._marks)

    def __contains__(self, path: object) -> bool:
        return path in self._marks

    def mark(self, path: str) -> None:
        """The watch saw ``path`` change."""
        self._marks[path] = self._marks.get(path, 0) + 1
        if self.forward is not None:
            self.forward("mark", path)

    def taken(self, paths: Iterable[str]) -> dict[str, int]:
        """What a batch about to look at ``paths`` releases when it ends."""
        marks = self._marks
        return {path: marks[path] for path in paths if path in marks}

    async def release(self, taken: Mapping[str, int], published: list[str]) -> None:
        """A batch ended: ``published`` (changed or removed) are read again in the cache,
        then the paths of ``taken`` not marked again meanwhile are released (also when the
        re-read fails: a path left marked would hold each of its requests until the bound)."""
        if self.forward is not None:
            self.forward("release", {"taken": dict(taken), "published": list(published)})
        try:
            if published and self.reread is not None:
                await self.reread(published)
        finally:
            for path, count in taken.items():
                if self._marks.get(path) == count:
                    del self._marks[path]
                    self._wake(path)

    def release_all(self) -> None:
        """The watch stopped: nothing is held any more."""
        if self.forward is not None:
            self.forward("release_all", None)
        self._marks.clear()
        for path in list(self._waiters):
            self._wake(path)

    def follow(self, kind: str, argument: Any) -> None:
        """Do what another process' :attr:`forward` told (a worker following the daemon's
        watch); anything malformed is ignored."""
        if kind == "mark" and isinstance(argument, str):
            self.mark(argument)
        elif kind == "release" and isinstance(argument, dict):
            taken, published = argument.get("taken"), argument.get("published")
            if isinstance(taken, dict) and isinstance(published, list):
                ensureDeferred(self.release(taken, published)).addErrback(lambda _: None)
        elif kind == "release_all":
            self.release_all()

    def wait(self, path: str) -> Deferred[None]:
        """Fires once ``path`` is released, or after :data:`HOLD_AT_MOST` seconds."""
        waiter: Deferred[None] = Deferred()
        call = self._clock.callLater(HOLD_AT_MOST, self._expire, path, waiter)
        self._waiters.setdefault(path, []).append((waiter, call))
        return waiter

    def _expire(self, path: str, waiter: Deferred[None]) -> None:
        waiters = self._waiters.get(path, [])
        self._waiters[path] = [pair for pair in waiters if pair[0] is not waiter]
        if not self._waiters[path]:
            del self._waiters[path]
        waiter.callback(None)

    def _wake(self, path: str) -> None:
        for waiter, call in self._waiters.pop(path, ()):
            if call.active():
                call.cancel()
            waiter.callback(None)
