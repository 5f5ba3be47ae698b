"""How far a long operation (a repository or mirror scan) got, for ``mirrorbits-ctl``.

The operation writes a :class:`Progress` as it goes; the control channel reads a
:class:`ProgressReport` of it while the CLI waits. Writing is a counter update: no I/O, no
log line, nothing the operation waits for.
"""

from __future__ import annotations

from attrs import define, field, frozen
from twisted.internet.interfaces import IReactorTime

__all__ = ["Progress", "ProgressReport"]


@frozen
class ProgressReport:
    """A phase (``listing``, ``checksums``, ``indexing``...), the files it counted so far,
    how many it will count in all (0: unknown) and the seconds since it began."""

    phase: str
    done: int
    total: int
    seconds: float


@define(eq=False)
class Progress:
    """The running phase of one operation and its count of files.

    :meth:`advance` may be called from one worker thread (the repository walk) while the
    reactor thread reads :meth:`report`; :meth:`begin` only between phases.
    """

    _clock: IReactorTime
    _phase: str = field(default="starting", init=False)
    _done: int = field(default=0, init=False)
    _total: int = field(default=0, init=False)
    _since: float = field(default=0.0, init=False)

    def __attrs_post_init__(self) -> None:
        self._since = self._clock.seconds()

    def begin(self, phase: str, total: int = 0) -> None:
        """Start counting ``phase`` from zero (``total``: how many it will count, if known)."""
        self._phase, self._done, self._total = phase, 0, total
        self._since = self._clock.seconds()

    def advance(self, count: int = 1) -> None:
        self._done += count

    def report(self) -> ProgressReport:
        seconds = max(0.0, self._clock.seconds() - self._since)
        return ProgressReport(self._phase, self._done, self._total, seconds)
