"""Verifying what the mirrors are believed to hold, the popular files first.

Every ``VerifyInterval`` seconds (a turn) each up mirror this node checks is sent ``HEAD``s for
files it is believed to hold, each chosen by :class:`~mirrorbits.health.rotation.Rotation`
(its most downloaded files often, the long tail slowly): one for an idle mirror, more for a
mirror users are sent to (:mod:`mirrorbits.health.pace`: one per two users, at most
:data:`~mirrorbits.health.pace.MAX_PER_TURN`), one after the other over one kept connection
(:mod:`mirrorbits.health.kept`). A 404, or a 200 of another size than the one
recorded for that mirror, means the mirror lost the file: it is forgotten there at once and the
mirror rescanned (``HealthChecker.file_lost``): a wrong answer costs one file, not the mirror.
A mirror refusing ``HEAD`` is asked with a ranged ``GET`` (:mod:`mirrorbits.health.refusals`); one
answering 429 or 503 is not verified for its ``Retry-After`` (bounded; 60 s without one).

Popularity is today's download counters (``STATS_FILE_<date>``, written by every HTTP process,
workers included), read every :data:`POPULARITY_EVERY` seconds on the monitoring node, never on
the request path; with each mirror's download counter (``STATS_MIRROR_<date>``), whose growth
gives the users sent there per second; with the mirrors holding each of the most downloaded files
(``FILEMIRRORS_<path>``, at most :data:`~mirrorbits.health.rotation.MAX_RANKED` files). See
docs/freshness.md.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from mirrorbits.config import Config
from mirrorbits.health.kept import KeptConnections
from mirrorbits.health.liveness import LivenessSchedule
from mirrorbits.health.lost import lost_because
from mirrorbits.health.outcome import check_urls, file_url, redirects_allowed
from mirrorbits.health.pace import Pace
from mirrorbits.health.probe import probe
from mirrorbits.health.refusals import DEFERRING, HeadRefusals, next_check_in
from mirrorbits.health.rotation import Rotation, ranked
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.stats import utc_date
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.events import PROTO_HTTP
from mirrorbits.store.files import file_mirror_ids, read_file, read_mirror_file
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.statistics import day_suffixes, files_downloads_in, mirrors_downloads_in
from mirrorbits.ticking import start_loop, stop_ticking

#: Seconds between two reads of the download counters and of the popular files' holders
#: (every tick while nothing was downloaded yet today).
POPULARITY_EVERY = 30.0
TICK = 1.0
#: Seconds one verification may take (a slow mirror is the liveness probes' business).
TIMEOUT = 10.0
MIRRORS_TIMEOUT = 30.0
#: After a lost file is found on a mirror (files are usually lost in batches), that mirror is
#: verified every :data:`BOOST_EVERY` seconds for :data:`BOOST_FOR` seconds, besides its
#: rescan; at most once per :data:`BOOST_AT_MOST_EVERY` seconds per mirror.
BOOST_EVERY = 1.0
BOOST_FOR = 20.0
BOOST_AT_MOST_EVERY = 300.0
#: Seconds a mirror answering 429 or 503 without ``Retry-After`` is not verified.
PAUSE_WITHOUT_RETRY_AFTER = 60.0

log = Logger()

__all__ = ["BOOST_AT_MOST_EVERY", "BOOST_EVERY", "BOOST_FOR", "POPULARITY_EVERY",
           "FileVerifier"]


@define(eq=False)
class FileVerifier(Service):
    """The verification of the up mirrors this node checks (``handles``), while
    ``VerifyInterval`` is not 0. ``lost(mirror, path, why)`` forgets a lost file."""

    _get_config: Callable[[], Config]
    _get_client: Callable[[], RedisClient]
    _store: MirrorStore
    _reactor: IConnectingReactor
    _lost: Callable[[Mirror, str, str], None]
    _handles: Callable[[int], bool] = lambda _mirror_id: True
    # the connections the requests go over (tests give one on the real reactor while the
    # turns follow a fake clock)
    _connections: KeptConnections | None = None
    # the mirrors found refusing HEAD (shared with the health check): asked with a ranged GET
    _head_refusals: HeadRefusals = field(factory=HeadRefusals)
    _pace: Pace = field(factory=Pace, init=False)
    _rotation: Rotation = field(factory=Rotation, init=False)
    _schedule: LivenessSchedule = field(factory=LivenessSchedule, init=False)
    _read_at: float | None = field(default=None, init=False)
    _pending: dict[int, Deferred[None]] = field(factory=dict, init=False)
    _loop: LoopingCall | None = field(default=None, init=False)
    _busy: bool = field(default=False, init=False)
    _started: dict[int, float] = field(factory=dict, init=False)  # mirror -> last request
    _boosts: dict[int, tuple[float, float]] = field(factory=dict, init=False)  # -> from, until
    # (mirror, protocol) -> when a verification last had an HTTP answer from it
    _answered: dict[tuple[int, int], float] = field(factory=dict, init=False)
    # mirror id -> not verified before (it answered 429 or 503: Retry-After, bounded)
    _paused: dict[int, float] = field(factory=dict, init=False)
    verified: int = field(default=0, init=False)
    # mirror id -> the HEADs of each of its turns, the last 100 (for tests and docs)
    turns: dict[int, list[int]] = field(factory=dict, init=False)

    name = "file-verification"

    def startService(self) -> None:
        super().startService()
        if self._connections is None:
            self._connections = KeptConnections(self._reactor)
        self._loop = start_loop(self.tick, self._reactor, TICK, now=True, log=log,
                                stopped="File verification loop stopped")

    def stopService(self) -> Deferred[None]:
        super().stopService()
        stopped = stop_ticking(self._loop, self._pending.values())
        if self._connections is not None:
            self._connections.close()
        return stopped

    def tick(self) -> Deferred[None]:
        """One round: refresh popularity when due, start the verifications due; never
        fails."""
        if self._get_config().verify_interval <= 0 or self._busy:
            return succeed(None)
        self._busy = True
        round_ = Deferred.fromCoroutine(self._round())

        def done(result: object) -> None:
            self._busy = False
            if isinstance(result, Failure) and self.running and not result.check(DatabaseNotReady):
                outage.report(log, "File verification", result, "File verification round failed")

        return round_.addBoth(done)

    async def _round(self) -> None:
        client = self._get_client()  # raises DatabaseNotReady: skip the round
        now = self._reactor.seconds()
        if self._read_at is None or now - self._read_at >= POPULARITY_EVERY:
            await self._read_popularity(client, now)
        reading = Deferred.fromCoroutine(self._store.all_mirrors())
        mirrors: list[Mirror] = await reading.addTimeout(MIRRORS_TIMEOUT, self._reactor)
        interval = float(self._get_config().verify_interval)
        if not self.running or interval <= 0:
            return
        now = self._reactor.seconds()
        self._paused = {key: until for key, until in self._paused.items() if now < until}
        up = {m.id: m for m in mirrors if m.enabled and (m.http_up or m.https_up)
              and self._handles(m.id) and m.id not in self._paused}
        # half a tick early rather than a whole tick late: the rounds keep the interval (the
        # next turn is due an interval after this one, not after this one's half tick: that
        # made every other turn a tick late, 2.6 s apart on average at 2 s)
        due = self._schedule.take_due(sorted(up), now, interval, early=TICK / 2)
        boosted = [mirror_id for mirror_id, (_, until) in self._boosts.items()
                   if now < until and mirror_id in up and mirror_id not in due
                   and now - self._started.get(mirror_id, 0.0) >= BOOST_EVERY - 0.01]
        self._pace.forget_others(set(up))
        for mirror_id in (*due, *boosted):
            if mirror_id in self._pending:
                continue
            heads = self._pace.turn(mirror_id, interval) if mirror_id in due else 1
            paths = self._choose(mirror_id, now, heads)
            if not paths:
                continue
            self._started[mirror_id] = now
            if mirror_id in due:
                self.turns[mirror_id] = [*self.turns.get(mirror_id, [])[-99:], len(paths)]
            self._start(up[mirror_id], paths)

    def _choose(self, mirror_id: int, now: float, heads: int) -> list[str]:
        """Up to ``heads`` distinct files of ``mirror_id`` to verify now."""
        paths: list[str] = []
        for _ in range(heads):
            path = self._rotation.choose(mirror_id, now)
            if path is None or path in paths:
                break
            self._rotation.verified(mirror_id, path, now)  # asked: not chosen again at once
            paths.append(path)
        return paths

    @property
    def busy(self) -> bool:
        """Whether a round or a verification is under way."""
        return self._busy or bool(self._pending)

    def boost(self, mirror_id: int) -> None:
        """``mirror_id`` lost a file: verify it every :data:`BOOST_EVERY` seconds for a
        while (unless it was boosted within :data:`BOOST_AT_MOST_EVERY` seconds)."""
        now = self._reactor.seconds()
        since, _ = self._boosts.get(mirror_id, (None, 0.0))
        if since is not None and now - since < BOOST_AT_MOST_EVERY:
            return
        self._boosts = {key: value for key, value in self._boosts.items()
                        if now - value[0] < BOOST_AT_MOST_EVERY}
        self._boosts[mirror_id] = (now, now + BOOST_FOR)
        # the next round reads what is downloaded now: files first asked since the last read
        # (up to POPULARITY_EVERY ago) are not in the rotation, and the boost would miss them
        self._read_at = None

    def answered_within(self, mirror_id: int, proto: int, seconds: float) -> bool:
        """Whether a verification had an HTTP answer from ``mirror_id`` over ``proto``
        within ``seconds`` (the liveness probe then needs no connection of its own)."""
        when = self._answered.get((mirror_id, proto))
        return when is not None and self._reactor.seconds() - when <= seconds

    async def _read_popularity(self, client: RedisClient, now: float) -> None:
        today = day_suffixes(utc_date(self._reactor.seconds()))[0]
        downloads = await files_downloads_in(client, today)
        self._pace.users.read(await mirrors_downloads_in(client, today), now)
        popular = ranked(downloads)
        holders = await gatherResults(
            [Deferred.fromCoroutine(file_mirror_ids(client, path)) for path in popular])
        self._rotation.set_held(dict(zip(popular, holders, strict=True)), popular, now,
                                downloads)
        if popular:
            self._read_at = now

    def _start(self, mirror: Mirror, paths: list[str]) -> None:
        pending = Deferred.fromCoroutine(self._verify_all(mirror, paths))
        self._pending[mirror.id] = pending

        def done(result: object) -> None:
            self._pending.pop(mirror.id, None)
            if isinstance(result, Failure) and self.running:
                outage.report(log, "File verification", result,
                              "Verifying {paths} on {name} failed", paths=" ".join(paths),
                              name=mirror.name)

        pending.addBoth(done)

    async def _verify_all(self, mirror: Mirror, paths: list[str]) -> None:
        """The ``HEAD``s of one turn, one after the other (over one kept connection)."""
        for path in paths:
            if not self.running or self._reactor.seconds() < self._paused.get(mirror.id, 0.0):
                return  # stopping, or the mirror asked to wait (429, 503)
            await self._verify(mirror, path)

    async def _verify(self, mirror: Mirror, path: str) -> None:
        recorded = await read_mirror_file(self._get_client(), mirror.id, path)
        if recorded is None:  # no longer held (a scan or a check dropped it meanwhile)
            self._rotation.forget(mirror.id, path)
            return
        bases = [(proto, base) for proto, base in check_urls(mirror.http_url)
                 if (mirror.http_up if proto == PROTO_HTTP else mirror.https_up)]
        if not bases:
            return
        proto, base = bases[0]
        config = self._get_config()
        connections = self._connections or KeptConnections(self._reactor)
        result = await probe(connections.agent, self._reactor, file_url(base, path),
                             redirects_allowed(mirror.allow_redirects, config.disallow_redirects),
                             mirror.name, TIMEOUT, config.allow_redirect_hosts,
                             self._head_refusals, (mirror.id, proto))
        self.verified += 1
        if result.status is not None:
            self._answered[mirror.id, proto] = self._reactor.seconds()
        if result.status in DEFERRING:  # refuses us for now: the health check judges it
            asked = (PAUSE_WITHOUT_RETRY_AFTER if result.retry_after is None
                     else result.retry_after)
            wait = next_check_in(asked, float(config.verify_interval))
            self._paused[mirror.id] = self._reactor.seconds() + wait
            return
        why = lost_because(result, recorded.size)
        if why and result.status == 200:
            origin = await read_file(self._get_client(), path)
            if origin is not None and not lost_because(result, origin.size):
                return  # the origin's new version, copied: the freshness check records it
        if why and self.running:
            self._rotation.forget(mirror.id, path)
            self.boost(mirror.id)
            self._lost(mirror, path, why)
