"""The targeted freshness check: after the origin changed files, the mirrors that held them are
asked (``HEAD``) until they hold the new version, which is then recorded at once, without
waiting for their next scan (docs/freshness.md). A new file (no mirror held it) is asked of
every mirror, for at most :data:`NEW_PATHS_PER_BURST` new files of one published batch.

Polite and bounded: at most :data:`PATHS_PER_BURST` paths of one published batch (the most
downloaded first), at most :data:`PER_MIRROR` requests at a time to one mirror, each pair asked
again after a doubling delay (:data:`FIRST_DELAY` up to :data:`MAX_DELAY`) for at most
:data:`GIVE_UP_AFTER` seconds, then left to the next scan; at most :data:`MAX_WAITING` pairs
wait at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from mirrorbits.config import Config
from mirrorbits.health.outcome import FOUND, check_urls, file_url, redirects_allowed
from mirrorbits.health.probe import AgentFactory, make_agent, probe
from mirrorbits.health.refusals import HeadRefusals
from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.files import file_mirror_ids
from mirrorbits.store.lostfiles import record_mirror_file
from mirrorbits.store.mirrors import mirror_ids, read_mirror
from mirrorbits.store.statistics import file_downloads_in

PATHS_PER_BURST = 100
PER_MIRROR = 4
#: New files (held by no mirror yet) of one published batch asked of every mirror.
NEW_PATHS_PER_BURST = 20
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
GIVE_UP_AFTER = 300.0
MAX_WAITING = 5000
_NS = 1_000_000_000

log = Logger()


def holds_version(info: FileInfo, status: int, content_length: str | None,
                  last_modified: str | None) -> bool:
    """Whether a mirror's answer to ``HEAD`` shows the origin's version ``info``: a 200 of
    the same size whose ``Last-Modified`` is the origin's modification time to the second
    (what a copy made with its time kept, ``rsync -t``, answers; a copy stamped with the time it
    was made is left to the scan)."""
    if status not in FOUND or content_length is None or last_modified is None:
        return False
    if content_length.strip() != str(info.size) or info.mod_time_ns is None:
        return False
    try:
        seconds = int(parsedate_to_datetime(last_modified).timestamp())
    except (TypeError, ValueError, OverflowError):
        return False
    return seconds == info.mod_time_ns // _NS


def next_delay(delay: float) -> float:
    return min(delay * 2, MAX_DELAY)


@define(eq=False)
class FreshnessChecker(Service):
    """Re-learns which mirrors hold a changed file (a service of the monitoring node; the
    repository watcher calls :meth:`changed`)."""

    _get_config: Callable[[], Config]
    _get_client: Callable[[], RedisClient]
    _reactor: IConnectingReactor
    _handles: Callable[[int], bool] = lambda mirror_id: True
    _agent_factory: AgentFactory | None = None
    # Told (mirror, path) when a mirror that held a changed file answers 404 for it: it lost
    # the file (the health checker forgets it there and rescans the mirror).
    _lost: Callable[[Mirror, str], None] | None = None
    # the mirrors found refusing HEAD (shared with the health check): asked with a ranged GET
    _head_refusals: HeadRefusals = field(factory=HeadRefusals)
    _current: dict[str, FileInfo] = field(factory=dict, init=False)  # path -> newest version
    _waiting: dict[tuple[int, str], IDelayedCall] = field(factory=dict, init=False)
    _per_path: Counter[str] = field(factory=Counter, init=False)
    _limits: dict[int, DeferredSemaphore] = field(factory=dict, init=False)
    recorded: int = field(default=0, init=False)

    name = "freshness-check"

    def stopService(self) -> None:
        super().stopService()
        for call in self._waiting.values():
            if call.active():
                call.cancel()
        self._waiting.clear()
        self._per_path.clear()
        self._current.clear()

    def changed(self, infos: Sequence[FileInfo]) -> None:
        """The origin published these versions: look for them on the mirrors."""
        if self.running and infos:
            Deferred.fromCoroutine(self._plan(list(infos))).addErrback(self._failed)

    async def _plan(self, infos: list[FileInfo]) -> None:
        client = self._get_client()
        if len(infos) > 1:  # the most downloaded first (asked first, kept when too many)
            downloads = await gatherResults(
                [Deferred.fromCoroutine(file_downloads_in(client, info.path, ""))
                 for info in infos[:PATHS_PER_BURST * 10]])
            ranked = sorted(zip(downloads, range(len(downloads)), strict=True), reverse=True)
            infos = [infos[index] for _, index in ranked[:PATHS_PER_BURST]]
        started = self._reactor.seconds()
        every_mirror: tuple[int, ...] | None = None
        new_files = 0
        for info in infos:
            self._current[info.path] = info
            holders = await file_mirror_ids(client, info.path)
            held = bool(holders)
            if not holders and new_files < NEW_PATHS_PER_BURST:
                # a new file: any mirror may receive it (asked as politely as the others)
                new_files += 1
                if every_mirror is None:
                    every_mirror = await mirror_ids(client)
                holders = every_mirror
            for mirror_id in holders:
                if self._handles(mirror_id):
                    self._schedule(mirror_id, info.path, FIRST_DELAY, started, held)
            if not self._per_path[info.path]:
                del self._current[info.path]

    def _schedule(self, mirror_id: int, path: str, delay: float, started: float,
                  held: bool) -> None:
        key = (mirror_id, path)
        previous = self._waiting.pop(key, None)
        if previous is not None:
            previous.cancel()
            self._per_path[path] -= 1
        elif len(self._waiting) >= MAX_WAITING:
            return
        self._per_path[path] += 1
        self._waiting[key] = self._reactor.callLater(delay, self._due, mirror_id, path, delay,
                                                     started, held)

    def _due(self, mirror_id: int, path: str, delay: float, started: float,
             held: bool) -> None:
        self._waiting.pop((mirror_id, path), None)
        # the path stays counted until this check ends: another mirror's check ending first
        # must not forget the version this one may still ask again for
        checking = Deferred.fromCoroutine(self._check(mirror_id, path, delay, started, held))
        checking.addErrback(self._failed)

    async def _check(self, mirror_id: int, path: str, delay: float, started: float,
                     held: bool) -> None:
        # the mirror's turn is taken before anything is read, so that its requests leave in the
        # order they came due (most downloaded first), whatever order Redis answers in
        limit = self._limits.setdefault(mirror_id, DeferredSemaphore(PER_MIRROR))
        await limit.acquire()
        try:
            info = self._current.get(path)
            if info is None or not self.running:
                return
            mirror = await read_mirror(self._get_client(), mirror_id)
            if mirror is None or not mirror.enabled or not mirror.http_url:
                return
            proto, base = check_urls(mirror.http_url)[0]
            allowed = redirects_allowed(mirror.allow_redirects,
                                        self._get_config().disallow_redirects)
            answer = await self._head(file_url(base, path), allowed, mirror.name,
                                      (mirror_id, proto))
            if answer is not None and holds_version(info, *answer):
                if self._current.get(path) is info:  # not replaced by a newer version meanwhile
                    await record_mirror_file(self._get_client(), mirror_id, path, info.size,
                                             info.mod_time_ns or 0)
                    self.recorded += 1
                    log.debug("[freshness] {name} holds the new {path}", name=mirror.name,
                              path=path)
                return
            if answer is not None and answer[0] == 404 and held and self._lost is not None:
                held = False  # said once per pair
                self._lost(mirror, path)
            if self._reactor.seconds() - started + delay < GIVE_UP_AFTER and self.running:
                self._schedule(mirror_id, path, next_delay(delay), started, held)
        finally:
            limit.release()
            if path in self._per_path:  # not cleared by a stop meanwhile
                self._per_path[path] -= 1
                if not self._per_path[path]:
                    self._per_path.pop(path, None)
                    self._current.pop(path, None)

    async def _head(self, url: str, allowed: bool, name: str,
                    key: tuple[int, int]) -> tuple[int, str | None, str | None] | None:
        """The mirror's status, size and ``Last-Modified`` for ``url`` (a ranged ``GET``
        when it refuses ``HEAD``); ``None`` when unreachable (asked again later)."""
        agents = self._agent_factory or (lambda admit: make_agent(self._reactor, admit))
        result = await probe(agents, self._reactor, url, allowed, name,
                             refusals=self._head_refusals, key=key)
        if result.status is None:
            return None
        return result.status, result.content_length, result.last_modified

    def _failed(self, failure: Failure) -> None:
        if not self.running:
            return
        if outage.redis_cause(failure) is not None:
            outage.report(log, "Freshness check", failure, "")
        else:
            log.warn("[freshness] Cannot check the mirrors for a changed file: {error}",
                     error=failure.getErrorMessage())
