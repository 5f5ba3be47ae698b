"""Liveness in seconds: a TCP connection to every up mirror every ``LivenessInterval``
seconds; one that refuses or times out :data:`FAILURES_BEFORE_DOWN` times in a row is
marked down at once. Besides, one idle connection is held to each up mirror
(:mod:`mirrorbits.health.held`): lost, then refused when opened again, the mirror is marked
down within milliseconds (docs/freshness.md).

The probe only ever marks a mirror down, with ``MirrorStore.set_state`` as the health
check does (so pub/sub tells every node; while Redis will not take it, the mirror is held
down in this node's memory, :mod:`.unrecorded`, and the rounds go on from the mirror list
last read): it comes back when a health check finds it up,
which rescans it first; one marked down here that accepts connections again within
:data:`RECOVERY_WINDOW` is health-checked at once. A mirror is probed once per interval (a
round may take it up to half a tick early, so that the rounds' jitter makes no turn a tick
late), the first probes spread over the interval; only the mirrors this node checks
(cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from mirrorbits.config import Config
from mirrorbits.connect import connect_quietly
from mirrorbits.health.endpoint import Endpoint, client_endpoint, endpoints
from mirrorbits.health.held import HeldConnections, Key
from mirrorbits.health.lastread import LastReadMirrors
from mirrorbits.health.outcome import PROTO_NAMES
from mirrorbits.health.unrecorded import record_state
from mirrorbits.helddown import HeldDown
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.ticking import start_loop, stop_ticking

REASON = "Unreachable (liveness)"
FAILURES_BEFORE_DOWN = 2
CONNECT_TIMEOUT = 2.0  # seconds; never more than the interval
CONCURRENCY = 20
TICK = 1.0
#: Seconds a mirror marked down here is still probed: accepting connections again within
#: them (a restart), it is health-checked at once rather than at its next check.
RECOVERY_WINDOW = 60.0

log = Logger()

__all__ = ["REASON", "Endpoint", "LivenessProbes", "LivenessSchedule", "endpoints"]


@define
class LivenessSchedule:
    """When each mirror is next due (pure timing): never twice within ``interval``, and
    mirrors first seen together spread evenly over one interval."""

    _due: dict[int, float] = field(factory=dict)
    _interval: float = 0.0

    def take_due(self, mirror_ids: Iterable[int], now: float, interval: float,
                 early: float = 0.0) -> list[int]:
        """The mirrors to probe now, in order (those due within ``early`` seconds too: rounds
        that come every tick, a little late or early, then keep the interval); each is next
        due ``interval`` from now."""
        ids = list(mirror_ids)
        if interval != self._interval:
            self._due.clear()
            self._interval = interval
        for gone in set(self._due) - set(ids):
            del self._due[gone]
        new = [mirror_id for mirror_id in ids if mirror_id not in self._due]
        for index, mirror_id in enumerate(new):
            self._due[mirror_id] = now + interval * index / len(new)
        ready = [mirror_id for mirror_id in ids if self._due[mirror_id] <= now + early]
        for mirror_id in ready:
            self._due[mirror_id] = now + interval
        return ready


@define(eq=False)
class LivenessProbes(Service):
    """The probes of the up mirrors this node checks (``handles``), while
    ``LivenessInterval`` is not 0."""

    _get_config: Callable[[], Config]
    _get_client: Callable[[], RedisClient]
    _store: MirrorStore
    _reactor: IConnectingReactor
    _handles: Callable[[int], bool] = lambda _mirror_id: True
    # Asks the health checker to check a mirror now (one marked down here that accepts
    # connections again).
    _check_soon: Callable[[int], None] = lambda _mirror_id: None
    # Whether another request (the file verification's HEAD) had an answer from (mirror,
    # protocol) within so many seconds: it proves as much as a connection, which is spared.
    _answered: Callable[[int, int, float], bool] = lambda _mirror_id, _proto, _seconds: False
    # Where a mirror found down is held while Redis will not record it (this node's HTTP).
    _held_down: HeldDown | None = None
    # Reads the mirror list: the master, or a replica while Redis is one (default: get_client).
    _read_client: Callable[[], RedisClient] | None = None
    _schedule: LivenessSchedule = field(factory=LivenessSchedule, init=False)
    _failures: dict[tuple[int, int], int] = field(factory=dict, init=False)
    _turns: dict[int, int] = field(factory=dict, init=False)
    _pending: dict[int, Deferred[None]] = field(factory=dict, init=False)
    _semaphore: DeferredSemaphore = field(factory=lambda: DeferredSemaphore(CONCURRENCY),
                                          init=False)
    _held: HeldConnections = field(init=False)
    _names: dict[int, str] = field(factory=dict, init=False)
    _downed: dict[tuple[int, int], float] = field(factory=dict, init=False)  # -> when
    _loop: LoopingCall | None = field(default=None, init=False)
    _reading: bool = field(default=False, init=False)
    _mirror_list: LastReadMirrors = field(init=False)
    spared: int = field(default=0, init=False)  # probes not sent: a verification answered

    name = "liveness"

    def __attrs_post_init__(self) -> None:
        self._held = HeldConnections(self._reactor, self._connection_refused,
                                     self._connection_failed)
        # while Redis cannot be read, the rounds probe the mirrors last read (one found down
        # meanwhile is held down in memory)
        self._mirror_list = LastReadMirrors(self._get_client, self._store, self._reactor, log,
                                            "Liveness", "Liveness round failed",
                                            self._read_client)

    def startService(self) -> None:
        super().startService()
        self._loop = start_loop(self.tick, self._reactor, TICK, now=True, log=log,
                                stopped="Liveness loop stopped")

    def stopService(self) -> Deferred[None]:
        super().stopService()
        stopped = stop_ticking(self._loop, self._pending.values())
        self._held.close_all()
        return stopped

    def tick(self) -> Deferred[None]:
        """One round: read the mirrors, start the probes that are due; never fails."""
        if self._get_config().liveness_interval <= 0:
            self._held.close_all()
            return succeed(None)
        if self._reading:
            return succeed(None)
        self._reading = True
        round_ = Deferred.fromCoroutine(self._round())

        def done(result: object) -> None:
            self._reading = False
            if isinstance(result, Failure) and not result.check(DatabaseNotReady):
                outage.report(log, "Liveness", result, "Liveness round failed")

        return round_.addBoth(done)

    async def _round(self) -> None:
        mirrors = (await self._mirror_list.read())[0]
        interval = float(self._get_config().liveness_interval)
        if not self.running or interval <= 0:
            return
        watched = {m.id: m for m in mirrors
                   if m.enabled and endpoints(m) and self._handles(m.id)}
        now = self._reactor.seconds()
        self._downed = {key: when for key, when in self._downed.items()
                        if now - when < RECOVERY_WINDOW}
        recovering = {m.id: m for m in mirrors
                      if m.enabled and self._handles(m.id) and self._recovering(m)}
        self._names = {m.id: m.name for m in (*watched.values(), *recovering.values())}
        timeout = min(CONNECT_TIMEOUT, interval)
        self._held.follow({(mirror_id, endpoint.proto): endpoint
                           for mirror_id, mirror in watched.items()
                           for endpoint in endpoints(mirror)}, interval, timeout)
        probed = {**recovering, **watched}
        for key in [k for k in self._failures if k[0] not in watched]:
            del self._failures[key]
        for mirror_id in set(self._turns) - set(probed):
            del self._turns[mirror_id]
        # half a tick early rather than a whole tick late, as the verification's turns: the
        # probes keep the interval (else every other one came a tick late, with the rounds'
        # own jitter: 2.6 s apart on average at 2 s)
        for mirror_id in self._schedule.take_due(probed, now, interval, early=TICK / 2):
            if mirror_id not in self._pending:
                self._start(probed[mirror_id], timeout, mirror_id not in watched, interval)

    def _recovering(self, mirror: Mirror) -> list[Endpoint]:
        """The endpoints of ``mirror`` marked down here within :data:`RECOVERY_WINDOW`
        and still down."""
        return [endpoint for endpoint in endpoints(mirror, down=True)
                if (mirror.id, endpoint.proto) in self._downed]

    def _start(self, mirror: Mirror, timeout: float, recovering: bool, interval: float) -> None:
        choices = self._recovering(mirror) if recovering else endpoints(mirror)
        turn = self._turns.get(mirror.id, 0)
        self._turns[mirror.id] = turn + 1
        endpoint = choices[turn % len(choices)]  # a mirror up on both: one each time
        if not recovering and self._answered(mirror.id, endpoint.proto, interval):
            self._failures.pop((mirror.id, endpoint.proto), None)  # it answered: alive
            self.spared += 1
            return

        def run() -> Deferred[None]:
            return Deferred.fromCoroutine(self._probe(mirror, endpoint, timeout, recovering))

        pending: Deferred[None] = self._semaphore.run(run)
        self._pending[mirror.id] = pending

        def done(result: object) -> None:
            self._pending.pop(mirror.id, None)
            if isinstance(result, Failure) and not result.check(DatabaseNotReady):
                if not self.running:
                    return
                outage.report(log, "Liveness", result, "Liveness probe of {name} failed",
                              name=mirror.name)

        pending.addBoth(done)

    async def _probe(self, mirror: Mirror, endpoint: Endpoint, timeout: float,
                     recovering: bool) -> None:
        error = await connect_error(self._reactor, endpoint, timeout)
        if not self.running:
            return
        key = (mirror.id, endpoint.proto)
        if recovering:
            if error is None and self._downed.pop(key, None) is not None:
                log.info("{name} {proto}: accepts connections again; health check now",
                         name=mirror.name, proto=PROTO_NAMES.get(endpoint.proto, ""))
                self._check_soon(mirror.id)
            return
        if error is None:
            self._failures.pop(key, None)
            return
        await self._failure(key, error, at_once=False)

    def _connection_refused(self, key: Key, error: str) -> None:
        """A held connection was lost, then a new one refused: nothing listens any more."""
        self._judge(key, error, at_once=True)

    def _connection_failed(self, key: Key, error: str) -> None:
        """A held connection was lost, then a new one failed otherwise (a timeout): one
        failed probe."""
        self._judge(key, error, at_once=False)

    def _judge(self, key: Key, error: str, at_once: bool) -> None:
        if not self.running:
            return
        judging = Deferred.fromCoroutine(self._failure(key, error, at_once))

        def failed(failure: Failure) -> None:
            if not self.running or failure.check(DatabaseNotReady):
                return  # stopping, or no database: the next failure says it again
            outage.report(log, "Liveness", failure, "Liveness verdict for mirror {id} failed",
                          id=key[0])

        judging.addErrback(failed)

    async def _failure(self, key: Key, error: str, at_once: bool) -> None:
        """One more failure for ``key``; down after :data:`FAILURES_BEFORE_DOWN` in a row,
        or at once when a held connection was lost and a new one refused."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        if failures < FAILURES_BEFORE_DOWN and not at_once:
            return
        del self._failures[key]
        mirror_id, proto = key
        if await record_state(self._store, self._held_down, self._reactor, mirror_id, proto,
                              False, REASON, self._names.get(mirror_id, "")):
            self._downed[key] = self._reactor.seconds()
            how = ("its connection lost, a new one refused" if at_once
                   else f"{failures} connections in a row")
            log.error("{name} {proto}: down, {reason}: {error} ({how}); back after a health "
                      "check finds it up", name=self._names.get(mirror_id, mirror_id),
                      proto=PROTO_NAMES.get(proto, ""), reason=REASON, error=error, how=how)


async def connect_error(reactor: IConnectingReactor, endpoint: Endpoint,
                        timeout: float) -> str | None:
    """Open and close one TCP connection; why it failed, or ``None``."""
    connecting = client_endpoint(reactor, endpoint, timeout)
    attempt = connect_quietly(connecting, Protocol())  # no factory lines per probe
    attempt.addTimeout(timeout + 1.0, reactor)  # also bounds the name resolution
    try:
        protocol = await attempt
    except Exception as err:
        return str(err) or type(err).__name__
    if isinstance(protocol, Protocol) and protocol.transport is not None:
        protocol.transport.loseConnection()
    return None
