"""Cluster membership and work partitioning between daemons sharing one Redis (§15.1).

Each daemon announces ``HELLO<db> <node id>`` on :data:`keys.CHANNEL_CLUSTER` every
second, reads the mirror IDs (the fields of ``MIRRORS``) and keeps the nodes heard within
the last five seconds. The sorted list of all mirror IDs is cut into one chunk per node:
automatic scans and health checks of a mirror run only on the node that
:meth:`ClusterService.handles` it. There is no leader.

Checking a mirror twice is harmless, never checking it is not: whenever this node cannot
tell its share (the ID list could not be read lately, or a mirror is not in it yet), it
handles every mirror concerned.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import txredisapi
from attrs import define, field
from twisted.application.service import Service
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from mirrorbits.logs import Logger
from mirrorbits.store import keys, outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.connection import COMMAND_TIMEOUT, describe
from mirrorbits.store.errors import DatabaseNotReady, StoreError
from mirrorbits.store.mirrors import mirror_ids
from mirrorbits.store.pubsub import announce_node
from mirrorbits.ticking import start_loop, stop_loop

log = Logger()

# What a failing Redis looks like: quietly retried at the next announce.
_REDIS_ERRORS = (
    StoreError,
    txredisapi.RedisError,
    DeferredTimeout,
    CancelledError,
    net_error.ConnectError,
    net_error.ConnectionClosed,
    ConnectionError,
    TimeoutError,
)


def new_node_id(hostname: str, rng: random.Random) -> str:
    """``<hostname>-<NNNNN>`` with a random number below 32000 (``unknown`` without hostname)."""
    return f"{hostname or 'unknown'}-{rng.randrange(32000):05d}"


def partition(mirror_ids: Iterable[int], nodes: int, index: int) -> frozenset[int]:
    """The mirror IDs that node ``index`` (0-based, in sorted node order) of ``nodes`` handles.

    The IDs, sorted numerically, are cut into chunks of ``round_half_up(#ids / nodes)``;
    node *i* takes positions ``[i·chunk, (i+1)·chunk)`` and the last node everything from
    its start on. With at most one node, that node handles every ID.
    """
    ids = sorted(set(mirror_ids))
    if nodes <= 1:
        return frozenset(ids)
    if not 0 <= index < nodes:
        return frozenset()
    chunk = (2 * len(ids) + nodes) // (2 * nodes)  # round half up, in integers
    start = index * chunk
    end = len(ids) if index == nodes - 1 else start + chunk
    return frozenset(ids[start:end])


def valid_node_id(node_id: str) -> bool:
    """Whether ``node_id`` can be announced (printable, without spaces)."""
    return bool(node_id) and node_id.isprintable() and not any(c.isspace() for c in node_id)


def _reason(failure: Failure) -> str:
    if failure.check(DeferredTimeout):
        return f"no answer from Redis within {COMMAND_TIMEOUT:g} s"
    value = failure.value
    return describe(value) if value is not None else failure.getErrorMessage()


@define(eq=False)
class ClusterService(Service):
    """Announces this node, tracks the others and tells which mirrors this node handles."""

    _get_client: Callable[[], RedisClient]  # or raises DatabaseNotReady
    _get_db: Callable[[], int]  # the current RedisDB (it can change on reload)
    _clock: IReactorTime
    node_id: str
    announce_interval: float = 1.0
    node_timeout: float = 5.0
    _peers: dict[str, float] = field(init=False, factory=dict)  # other node -> last heard
    _db: int | None = field(init=False, default=None)
    _nodes: tuple[str, ...] = field(init=False, default=())
    _index: int = field(init=False, default=0)
    _mirror_ids: tuple[int, ...] = field(init=False, default=())
    _known: frozenset[int] = field(init=False, default=frozenset())  # _mirror_ids as a set
    _read_at: float | None = field(init=False, default=None)  # when _mirror_ids was read
    _handled: frozenset[int] | None = field(init=False, default=None)
    _loop: LoopingCall | None = field(init=False, default=None)
    _inflight: Deferred[None] | None = field(init=False, default=None)
    _failing: bool = field(init=False, default=False)  # the failure was logged

    name = "cluster"

    def __attrs_post_init__(self) -> None:
        self._nodes = (self.node_id,)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every known node ID, sorted (string order), this node included."""
        return self._nodes

    @property
    def index(self) -> int:
        """This node's position in :attr:`nodes`."""
        return self._index

    @property
    def mirror_ids(self) -> tuple[int, ...]:
        """All mirror IDs as last read from Redis, sorted."""
        return self._mirror_ids

    @property
    def mirror_ids_read_at(self) -> float | None:
        """When (clock seconds) the mirror IDs were last read; None since a failed read."""
        return self._read_at

    @property
    def share_known(self) -> bool:
        """Whether the mirror IDs were read within the node timeout (so the share holds)."""
        read_at = self._read_at
        return read_at is not None and self._clock.seconds() - read_at <= self.node_timeout

    def learn_mirror_ids(self, ids: Iterable[int]) -> None:
        """Record the mirror IDs just read from Redis; they hold for the node timeout."""
        self._read_at = self._clock.seconds()
        known = tuple(sorted(set(ids)))
        if known != self._mirror_ids:
            self._mirror_ids, self._known = known, frozenset(known)
            self._handled = None

    def handles(self, mirror_id: int) -> bool:
        """Whether this node runs the automatic scans and health checks of ``mirror_id``.

        True for every mirror while this node is alone or cannot tell its share, and for a
        mirror added since the ID list was last read: it may be nobody else's yet.
        """
        if len(self._nodes) == 1 or mirror_id not in self._known or not self.share_known:
            return True
        if self._handled is None:
            self._handled = partition(self._mirror_ids, len(self._nodes), self._index)
        return mirror_id in self._handled

    def on_announce(self, message: str) -> None:
        """Handle one message of the cluster channel."""
        db = self._current_db()
        prefix = keys.cluster_announce(db, "")
        if not message.startswith(prefix):
            return
        now = self._clock.seconds()
        self._prune(now)
        node_id = message[len(prefix):]
        if node_id == self.node_id or not valid_node_id(node_id):
            return
        if node_id not in self._peers:
            log.info("-> Node {node} joined the cluster", node=node_id)
            self._peers[node_id] = now
            self._update_nodes()
        else:
            self._peers[node_id] = now

    def startService(self) -> None:
        super().startService()
        log.info("Cluster node ID: {node}", node=self.node_id)
        self._loop = start_loop(self._tick, self._clock, self.announce_interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        stop_loop(self._loop)
        self._loop = None
        if self._inflight is not None:
            self._inflight.cancel()

    def _current_db(self) -> int:
        """The configured DB; on a change, the peers of the former cluster are forgotten."""
        db = self._get_db()
        if db != self._db:
            if self._db is not None:
                for node_id in sorted(self._peers):
                    log.info("<- Node {node} left the cluster", node=node_id)
                self._peers.clear()
                self._update_nodes()
                self._read_at = None  # the mirror IDs of the former database
            self._db = db
        return db

    def _prune(self, now: float) -> None:
        stale = [n for n, seen in self._peers.items() if now - seen > self.node_timeout]
        for node_id in sorted(stale):
            del self._peers[node_id]
            log.info("<- Node {node} left the cluster", node=node_id)
        if stale:
            self._update_nodes()

    def _update_nodes(self) -> None:
        nodes = tuple(sorted({self.node_id, *self._peers}))
        if nodes != self._nodes:
            self._nodes = nodes
            self._index = nodes.index(self.node_id)
            self._handled = None

    def _tick(self) -> None:
        try:
            db = self._current_db()
            self._prune(self._clock.seconds())
            if self._inflight is not None:
                return
            d = Deferred.fromCoroutine(self._announce(db))
            d.addTimeout(COMMAND_TIMEOUT, self._clock)
            self._inflight = d
            d.addCallbacks(self._worked, self._failed)
        except Exception:
            log.failure("Cluster announce failed")

    async def _announce(self, db: int) -> None:
        client = self._get_client()
        await announce_node(client, db, self.node_id)
        self.learn_mirror_ids(await mirror_ids(client))

    def _worked(self, _: None) -> None:
        self._inflight = None
        if self._failing:
            self._failing = False
            log.info("Cluster announce works again: this node checks and scans its share "
                     "of the mirrors")

    def _failed(self, failure: Failure) -> None:
        self._inflight = None
        self._read_at = None  # until the next read, this node handles every mirror
        if failure.check(DatabaseNotReady):  # the Redis service reports its own state
            return
        if failure.check(*_REDIS_ERRORS):
            if not self._failing and self.running:
                self._failing = True
                log.warn("Cluster announce failed ({error}): this node checks and scans every "
                         "mirror until it works again", error=_reason(failure))
            return
        outage.report(log, "Cluster announce", failure, "Unexpected error in the cluster announce")
