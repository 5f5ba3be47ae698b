"""A mirror that lost one file it was believed to hold (a 404, or the wrong size).

The reference marks the whole mirror down for one missing file. Here the file alone is
forgotten on that mirror at once (:func:`~mirrorbits.store.lostfiles.drop_mirror_file`), the
mirror is rescanned (the file comes back when a scan lists it again), and the check tries
another file: only :data:`MISSING_BEFORE_DOWN` missing files in a row mark the mirror down.
See docs/freshness.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from mirrorbits.health.outcome import FOUND, ProbeResult
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import ScanInProgress
from mirrorbits.store.lostfiles import drop_mirror_file

__all__ = ["MISSING_BEFORE_DOWN", "RESCAN_AT_MOST_EVERY", "LostFiles", "lost_because"]

#: Files found missing on a mirror, in one check, before it is marked down.
MISSING_BEFORE_DOWN = 3
#: Seconds between two rescans of one mirror for lost files: a mirror whose HTTP tree differs
#: from its rsync listing must not be listed again at every check.
RESCAN_AT_MOST_EVERY = 600.0

log = Logger(namespace="mirrorbits.health.lost")


def lost_because(result: ProbeResult, local_size: int | None) -> str:
    """Why the probed file no longer counts as held by the mirror; empty when it does."""
    if result.status == 404:
        return "404"
    if result.status not in FOUND or local_size is None or result.content_length is None:
        return ""
    try:
        remote = int(result.content_length.strip())
    except ValueError:
        return ""
    return "" if remote == local_size else f"{remote} bytes instead of {local_size}"


@define(eq=False)
class LostFiles:
    """Forgets lost files and asks for one rescan at a time per mirror."""

    _rescan: Callable[[int], Awaitable[object]] | None
    _clock: IReactorTime
    _rescanning: set[int] = field(factory=set, init=False)
    _rescanned_at: dict[int, float] = field(factory=dict, init=False)

    async def forget(self, client: RedisClient, mirror: Mirror, path: str, why: str) -> None:
        """Drop ``path`` from ``mirror``'s files, say so once, and rescan the mirror."""
        await drop_mirror_file(client, mirror.id, path)
        # a copy of another size is there, not missing: an outdated one, most often
        state = "is missing there" if why == "404" else "differs there"
        log.warn("{name}: {path} {state} ({why}): no longer sent to this mirror "
                 "until a scan finds it again", name=mirror.name, path=path, state=state, why=why)
        self._rescan_soon(mirror)

    def _rescan_soon(self, mirror: Mirror) -> None:
        if self._rescan is None or mirror.id in self._rescanning:
            return
        now = self._clock.seconds()
        last = self._rescanned_at.get(mirror.id)
        if last is not None and now - last < RESCAN_AT_MOST_EVERY:
            log.debug("{name}: rescanned for a missing file less than {seconds:.0f} s ago",
                      name=mirror.name, seconds=RESCAN_AT_MOST_EVERY)
            return
        self._rescanned_at[mirror.id] = now
        self._rescanning.add(mirror.id)
        rescan = self._rescan

        async def run() -> None:
            try:
                await rescan(mirror.id)
            except ScanInProgress:
                pass  # a scan running now lists the mirror anyway
            except Exception as err:
                log.warn("{name}: rescan after a missing file failed: {error}",
                         name=mirror.name, error=str(err) or type(err).__name__)
            finally:
                self._rescanning.discard(mirror.id)

        Deferred.fromCoroutine(run())
