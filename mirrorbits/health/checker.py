"""The health-check service: every second, schedule the checks that are due (§7).

``last_check`` lives in memory, so every enabled mirror is checked right after start.
At most 10 checks run at once and at most 50 more wait for a slot. A mirror without a
checkable file (empty ``HANDLEDFILES``) is simply checked again at the next interval.

While Redis cannot be read (down, a replica), the checks go on from the mirror list and
the files last read: a mirror found down is held down in memory (:mod:`.unrecorded`); a
verdict Redis would change but cannot record is tried again at the next round, one it
already holds waits for the next interval.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from attrs import define, evolve, field
from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredSemaphore,
)
from twisted.internet.task import LoopingCall
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from mirrorbits.config import Config
from mirrorbits.health.lastread import LastReadMirrors
from mirrorbits.health.liveness import REASON as LIVENESS_REASON
from mirrorbits.health.lost import MISSING_BEFORE_DOWN, LostFiles, lost_because
from mirrorbits.health.outcome import (
    PROTO_NAMES,
    UP,
    Outcome,
    check_urls,
    classify,
    file_url,
    log_prefix,
    redirects_allowed,
)
from mirrorbits.health.probe import CHECK_TIMEOUT, AgentFactory, make_agent, probe
from mirrorbits.health.refusals import HeadRefusals, RateLimits, next_check_in
from mirrorbits.health.target import Target, pick_target, still_exists
from mirrorbits.health.unrecorded import record_state
from mirrorbits.helddown import HeldDown
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.events import PROTO_HTTP
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.ticking import start_loop, stop_ticking

WORKERS = 10
QUEUE = 50
TICK = 1.0
#: Files picked per round for mirrors another node checks: should this node lose sight of
#: Redis and of the other nodes, it checks those too, asking for that file.
SPARE_TARGETS = 5
#: What the liveness probes said of a mirror this checker last found up (down).
LIVENESS_SAID: Final = "down (liveness)"

log = Logger()


@define(eq=False)
class HealthChecker(Service):
    """Periodic HEAD checks of every enabled mirror, recorded with ``MirrorStore.set_state``.

    ``get_client()`` returns the txredisapi handler or raises ``DatabaseNotReady`` (the
    tick is then skipped). ``agent_factory`` builds the HTTP agent (tests inject trust
    roots); ``handles(mirror_id)`` tells whether this node checks a mirror (cluster).
    """

    _get_config: Callable[[], Config]
    _get_client: Callable[[], RedisClient]
    _store: MirrorStore
    _reactor: IConnectingReactor
    _agent_factory: AgentFactory | None = None
    _timeout: float = CHECK_TIMEOUT
    _handles: Callable[[int], bool] = lambda _mirror_id: True
    _rescan: Callable[[int], Awaitable[object]] | None = None
    # Told (mirror id, seconds) after each finished check (the metrics' check latency).
    _observe: Callable[[int, float], None] | None = None
    # Where a mirror found down is held while Redis will not record it (this node's HTTP).
    _held_down: HeldDown | None = None
    # Reads the mirror list and picks the files to ask for: the master, or a replica while
    # Redis is one (default: get_client).
    _read_client: Callable[[], RedisClient] | None = None
    # The mirrors found refusing HEAD (shared with the file verification).
    _head_refusals: HeadRefusals = field(factory=HeadRefusals)
    _last_check: dict[int, float] = field(factory=dict, init=False)
    _pending: dict[int, Deferred[None]] = field(factory=dict, init=False)
    _semaphore: DeferredSemaphore = field(factory=lambda: DeferredSemaphore(WORKERS), init=False)
    _loop: LoopingCall | None = field(default=None, init=False)
    _agents: AgentFactory | None = field(default=None, init=False)
    _round: Deferred[None] | None = field(default=None, init=False)
    # What the last check of each (mirror, protocol) said: a repeated condition (a mirror
    # still up, still refusing connections) is logged at debug level only.
    _said: dict[tuple[int, int], str] = field(factory=dict, init=False)
    _lost: LostFiles = field(init=False)
    _mirror_list: LastReadMirrors = field(init=False)
    _targets: dict[int, Target] = field(factory=dict, init=False)  # the file last picked
    _untargeted: dict[int, float] = field(factory=dict, init=False)  # no file to pick: when
    # mirrors whose new state (up, or down) could not be recorded: checked again at once
    _unrecorded: set[int] = field(factory=set, init=False)
    _rate_limits: RateLimits = field(factory=RateLimits, init=False)  # 429s in a row
    # mirror id -> not checked again before (a Retry-After longer than the interval)
    _not_before: dict[int, float] = field(factory=dict, init=False)

    name = "health"

    def __attrs_post_init__(self) -> None:
        self._lost = LostFiles(self._rescan, self._reactor)
        self._mirror_list = LastReadMirrors(self._get_client, self._store, self._reactor, log,
                                            "Health check", "Health-check round failed",
                                            self._read_client)

    def startService(self) -> None:
        super().startService()
        self._agents = self._agent_factory or (lambda admit: make_agent(self._reactor, admit))
        self._loop = start_loop(self.tick, self._reactor, TICK, now=True, log=log,
                                stopped="Health-check loop stopped")

    def stopService(self) -> Deferred[None]:
        """Stop scheduling and cancel the checks in flight."""
        super().stopService()
        return stop_ticking(self._loop, self._pending.values())

    def check_soon(self, mirror_id: int) -> None:
        """Check ``mirror_id`` at the next round (within a second), not at its interval."""
        self._last_check.pop(mirror_id, None)

    def file_lost(self, mirror: Mirror, path: str, why: str = "404") -> None:
        """Another check saw ``mirror`` answer 404 for ``path``, a file it held: forgotten
        there and the mirror rescanned, as when a health check finds it (unless the file
        was removed locally meanwhile)."""
        if not self.running:
            return
        forgetting = Deferred.fromCoroutine(self._forget(mirror, path, why))
        forgetting.addErrback(lambda failure: None if failure.check(DatabaseNotReady) else
                              outage.report(log, "Health check", failure,
                                            "Forgetting a lost file failed"))

    async def _forget(self, mirror: Mirror, path: str, why: str) -> None:
        client = self._get_client()
        if await still_exists(client, path):
            await self._lost.forget(client, mirror, path, why)

    @property
    def in_flight(self) -> frozenset[int]:
        """IDs of the mirrors being checked or waiting for a worker."""
        return frozenset(self._pending)

    def when_idle(self) -> Deferred[None]:
        """Fires once the running round and every check scheduled so far have finished."""
        return Deferred.fromCoroutine(self._idle())

    async def _idle(self) -> None:
        if self._round is not None:
            await _watch([self._round])
        await _watch(list(self._pending.values()))

    def tick(self) -> Deferred[None]:
        """One scheduling round; never fails (the loop must survive anything)."""
        self._round = Deferred.fromCoroutine(self._tick_guarded())
        return self._round

    async def _tick_guarded(self) -> None:
        try:
            await self._schedule()
        except DatabaseNotReady:
            return
        except Exception:
            outage.report(log, "Health check", Failure(), "Health-check round failed")

    async def _spare_targets(self, mirrors: list[Mirror], now: float, interval: float) -> None:
        """Pick a file for a few enabled mirrors that have none yet (another node's); one
        without any is asked again after a check interval."""
        missing = [m for m in mirrors if m.enabled and m.id not in self._targets
                   and now - self._untargeted.get(m.id, now - interval) >= interval]
        for mirror in missing[:SPARE_TARGETS]:
            try:
                if await self._pick_target(mirror) is None:
                    self._untargeted[mirror.id] = now
            except Exception:
                return  # the next round

    async def _schedule(self) -> None:
        mirrors, fresh = await self._mirror_list.read()
        if not self.running:
            return
        now = self._reactor.seconds()
        interval = self._get_config().check_interval * 60
        width = max((len(m.name) for m in mirrors), default=0) + 4
        known = {m.id for m in mirrors}
        for gone in set(self._last_check) - known:
            del self._last_check[gone]
        for gone in set(self._targets) - known:
            del self._targets[gone]
        for gone in set(self._untargeted) - known:
            del self._untargeted[gone]
        for gone in set(self._not_before) - known:
            del self._not_before[gone]
        self._rate_limits.keep_only((m.id, proto) for m in mirrors for proto in PROTO_NAMES)
        for mirror in mirrors:
            if not mirror.enabled or mirror.id in self._pending or not self._handles(mirror.id):
                continue
            last = self._last_check.get(mirror.id)
            if last is not None and now - last <= interval:
                continue
            if now < self._not_before.get(mirror.id, now):
                continue  # it asked to wait (Retry-After)
            if len(self._pending) >= WORKERS + QUEUE:
                log.debug("Health-check queue full")
                return
            self._enqueue(mirror, width)
        if fresh:
            await self._spare_targets(mirrors, now, interval)

    def _enqueue(self, mirror: Mirror, width: int) -> None:
        def run() -> Deferred[None]:
            return Deferred.fromCoroutine(self._check(mirror, width))

        pending: Deferred[None] = self._semaphore.run(run)
        self._pending[mirror.id] = pending

        def done(result: Failure | None) -> None:
            self._pending.pop(mirror.id, None)
            if isinstance(result, Failure) and not result.check(CancelledError):
                outage.report(log, "Health check", result, "Health check of {name} failed",
                              name=mirror.name)

        pending.addBoth(done)

    async def _check(self, mirror: Mirror, width: int) -> None:
        """Check every protocol of one mirror; remember when, unless a new state Redis could
        not record waits (then again at the next round)."""
        started = self._reactor.seconds()
        self._unrecorded.discard(mirror.id)
        try:
            await self._check_protocols(mirror, width)
            if self._observe is not None:
                self._observe(mirror.id, self._reactor.seconds() - started)
        except DatabaseNotReady:
            if mirror.id in self._unrecorded:
                return  # again at the next round, until Redis records it
        except CancelledError:
            raise
        except Exception:
            failure = Failure()
            outage.report(log, "Health check", failure, "Health check of {name} failed",
                          name=mirror.name)
            if outage.redis_cause(failure) is not None and mirror.id in self._unrecorded:
                return  # again at the next round, until Redis records it
        self._last_check[mirror.id] = self._reactor.seconds()

    async def _pick_target(self, mirror: Mirror) -> Target | None:
        """A file to ask ``mirror`` for; while Redis cannot be read, the one last picked."""
        try:
            target = await pick_target((self._read_client or self._get_client)(), mirror.id)
        except Exception as err:
            if outage.redis_cause(err) is None:
                raise
            return self._targets.get(mirror.id)
        if target is not None:
            self._targets[mirror.id] = target
        return target

    async def _check_protocols(self, mirror: Mirror, width: int) -> None:
        target = await self._pick_target(mirror)
        if target is None:
            log.debug("{name}: no file to check yet (not scanned?)", name=mirror.name)
            return
        config = self._get_config()
        allowed = redirects_allowed(mirror.allow_redirects, config.disallow_redirects)
        disabled = False
        retry_after: float | None = None
        for proto, base in check_urls(mirror.http_url):
            prefix = log_prefix(mirror.name, proto, width)
            outcome = await self._probe_target(mirror, proto, base, target, allowed, prefix)
            if not self.running:
                raise CancelledError()  # stopped meanwhile: the aborted request means nothing
            if outcome is None:
                continue
            if outcome.retry_after is not None:
                retry_after = max(retry_after or 0.0, outcome.retry_after)
                self._wait_before_next(mirror.id, retry_after, config.check_interval * 60)
            said = self._said.get((mirror.id, proto))  # None: not checked by this process yet
            if said is None and outcome.condition == UP and recorded_up(mirror, proto):
                said = UP  # a restart, an upgrade, a share taken over: Redis knew; no news
            if said is not None and said_by_liveness(mirror, proto, False):
                said = LIVENESS_SAID  # down since, by the probes: its recovery is news
            repeated = said == outcome.condition or (
                said is not None and said_by_liveness(mirror, proto, outcome.up))
            self._said[mirror.id, proto] = outcome.condition
            log.emit(LogLevel.debug if repeated else outcome.level, "{prefix} {message}",
                     prefix=prefix, message=outcome.message)
            if outcome.up and needs_rescan(mirror, proto) and not await self._rescanned(mirror):
                continue
            if outcome.keep_state and recorded_up(mirror, proto):
                continue  # refused the checker (429), not yet long enough to be down
            try:
                await record_state(self._store, self._held_down, self._reactor, mirror.id,
                                   proto, outcome.up, outcome.reason, mirror.name)
            except Exception:
                if outcome.up != recorded_up(mirror, proto):
                    self._unrecorded.add(mirror.id)
                raise
            if outcome.missing_file and config.disable_on_missing_file and not disabled:
                disabled = True
                await self._store.set_enabled(mirror.id, False)
        if retry_after is None:
            self._not_before.pop(mirror.id, None)

    def _wait_before_next(self, mirror_id: int, retry_after: float, interval: float) -> None:
        """The mirror asked to wait ``retry_after`` seconds (429, 503): its next check is
        then, within the bounds of :func:`~mirrorbits.health.refusals.next_check_in`."""
        self._not_before[mirror_id] = (self._reactor.seconds()
                                       + next_check_in(retry_after, interval))

    async def _rescanned(self, mirror: Mirror) -> bool:
        """Scan a recovering mirror before trusting it again; False keeps it down."""
        if self._rescan is None:
            return True
        try:
            await self._rescan(mirror.id)
        except CancelledError:
            raise
        except Exception as err:
            log.warn("{name} answers again but its rescan failed, it stays down: {error}",
                     name=mirror.name, error=err)
            return False
        return True

    async def _probe_target(self, mirror: Mirror, proto: int, base: str, target: Target,
                            allowed: bool, prefix: str) -> Outcome | None:
        """The outcome for one protocol; ``None`` when nothing should be recorded.

        A 404 for a file deleted locally since the mirror's scan is not the mirror's
        fault: another file is tried once, then the mirror is left as it is. A file the
        mirror lost (404, wrong size) is forgotten there (:mod:`mirrorbits.health.lost`);
        after a 404 another file is tried, and only :data:`MISSING_BEFORE_DOWN` missing
        files make the verdict.
        """
        deleted_locally = missing = 0
        while True:
            assert self._agents is not None  # set at start
            result = await probe(self._agents, self._reactor, file_url(base, target.path),
                                 allowed, mirror.name, self._timeout,
                                 self._get_config().allow_redirect_hosts,
                                 self._head_refusals, (mirror.id, proto))
            now = self._reactor.seconds()
            streak = self._rate_limits.answered((mirror.id, proto), result.status, now)
            outcome = classify(result, target.path, target.size, streak, now)
            why = lost_because(result, target.size)
            if not why:
                return outcome
            client = self._get_client()
            if not await still_exists(client, target.path):
                if not outcome.missing_file:
                    return outcome
                log.info("{prefix} {path} was removed locally since the last scan; not counted",
                         prefix=prefix, path=target.path)
                deleted_locally += 1
                if deleted_locally == 2:
                    return None
                replacement = await pick_target(client, mirror.id, exclude=target.path)
                if replacement is None:
                    return None
                target = replacement
                continue
            await self._lost.forget(client, mirror, target.path, why)
            missing += 1
            if not outcome.missing_file:
                return outcome
            if missing == MISSING_BEFORE_DOWN:  # most often a URL on another tree than the scan's
                return evolve(outcome, message=(
                    f"{outcome.message} ({missing} files missing in a row: is {base}/ the "
                    "top of the tree its scans list?)"))
            replacement = await pick_target(client, mirror.id, exclude=target.path)
            if replacement is None:
                return outcome
            target = replacement


def needs_rescan(mirror: Mirror, proto: int) -> bool:
    """Whether a mirror found up again must be scanned first: it was down on ``proto`` and
    its last successful scan is older than the moment it went down (its files may have
    changed while it was unreachable)."""
    was_up = mirror.http_up if proto == PROTO_HTTP else mirror.https_up
    if was_up or mirror.state_since is None:
        return False
    last_scan = mirror.last_successful_sync
    return last_scan is None or last_scan <= mirror.state_since


def _watch(deferreds: list[Deferred[None]]) -> Deferred[None]:
    """Fires when all ``deferreds`` have; cancelling it leaves them alone."""
    waiter: Deferred[None] = Deferred()
    remaining = [len(deferreds)]

    def one_done(result: object) -> object:
        remaining[0] -= 1
        if remaining[0] == 0 and not waiter.called:
            waiter.callback(None)
        return result

    if not deferreds:
        waiter.callback(None)
    for deferred in deferreds:
        deferred.addBoth(one_done)
    return waiter


def recorded_up(mirror: Mirror, proto: int) -> bool:
    """Whether Redis records ``mirror`` up in ``proto``."""
    return mirror.http_up if proto == PROTO_HTTP else mirror.https_up


def said_by_liveness(mirror: Mirror, proto: int, up: bool) -> bool:
    """Whether a check finding ``mirror`` down in ``proto`` finds what the liveness check
    already said ("down, Unreachable (liveness) ...; back after a health check finds it up"):
    its first failing check is then not said again."""
    if up:
        return False
    if proto == PROTO_HTTP:
        return not mirror.http_up and mirror.http_down_reason == LIVENESS_REASON
    return not mirror.https_up and mirror.https_down_reason == LIVENESS_REASON
