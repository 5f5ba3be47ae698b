"""Cluster membership and work partitioning between daemons sharing one Redis (§15.1).

Each daemon announces ``HELLO<db> <node id>`` on :data:`keys.CHANNEL_CLUSTER` every
second and keeps the nodes heard within the last five seconds. The sorted list of all
mirror IDs is cut into one chunk per node: automatic scans and health checks of a mirror
run only on the node that :meth:`ClusterService.handles` it. There is no leader.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from typing import Any

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
from mirrorbits.store import keys
from mirrorbits.store.connection import COMMAND_TIMEOUT, describe
from mirrorbits.store.errors import DatabaseNotReady, StoreError
from mirrorbits.store.pubsub import publish

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
_MIRROR_ID = re.compile(r"[+-]?[0-9]+")


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


def _valid_node_id(node_id: str) -> bool:
    return bool(node_id) and node_id.isprintable() and not any(c.isspace() for c in node_id)


def _reason(failure: Failure) -> str:
    if failure.check(DeferredTimeout):
        return f"no answer from Redis within {COMMAND_TIMEOUT:g} s"
    value = failure.value
    return describe(value) if value is not None else failure.getErrorMessage()


def _mirror_ids(members: Iterable[Any]) -> tuple[int, ...]:
    ids: set[int] = set()
    for member in members or ():
        text = member.decode("utf-8", "replace") if isinstance(member, bytes) else str(member)
        if _MIRROR_ID.fullmatch(text):
            ids.add(int(text))
    return tuple(sorted(ids))


@define(eq=False)
class ClusterService(Service):
    """Announces this node, tracks the others and tells which mirrors this node handles."""

    _get_client: Callable[[], Any]  # txredisapi client, or raises DatabaseNotReady
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
    _handled: frozenset[int] | None = field(init=False, default=None)
    _loop: LoopingCall | None = field(init=False, default=None)
    _inflight: Deferred[None] | None = field(init=False, default=None)
    _failing: bool = field(init=False, default=False)

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

    def handles(self, mirror_id: int) -> bool:
        """Whether this node runs the automatic scans and health checks of ``mirror_id``.

        A mirror added since the last refresh of the ID list is handled only by a lone node.
        """
        if len(self._nodes) == 1:
            return True
        if self._handled is None:
            self._handled = partition(self._mirror_ids, len(self._nodes), self._index)
        return mirror_id in self._handled

    def on_announce(self, message: str) -> None:
        """Handle one message of the cluster channel."""
        db = self._current_db()
        prefix = f"HELLO{db} "
        if not message.startswith(prefix):
            return
        now = self._clock.seconds()
        self._prune(now)
        node_id = message[len(prefix):]
        if node_id == self.node_id or not _valid_node_id(node_id):
            return
        if node_id not in self._peers:
            log.info("-> Node {node} joined the cluster", node=node_id)
            self._peers[node_id] = now
            self._update_nodes()
        else:
            self._peers[node_id] = now

    def startService(self) -> None:
        super().startService()
        loop = LoopingCall(self._tick)
        loop.clock = self._clock
        self._loop = loop
        loop.start(self.announce_interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
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
            self._inflight = d
            d.addCallbacks(self._worked, self._failed)
        except Exception:
            log.failure("Cluster announce failed")

    async def _announce(self, db: int) -> None:
        client = self._get_client()
        sent = Deferred.fromCoroutine(
            publish(client, keys.CHANNEL_CLUSTER, f"HELLO{db} {self.node_id}"))
        await sent.addTimeout(COMMAND_TIMEOUT, self._clock)
        members = await client.smembers(keys.MIRRORS).addTimeout(COMMAND_TIMEOUT, self._clock)
        ids = _mirror_ids(members)
        if ids != self._mirror_ids:
            self._mirror_ids = ids
            self._handled = None

    def _worked(self, _: None) -> None:
        self._inflight = None
        if self._failing:
            self._failing = False
            log.info("Cluster announces work again")

    def _failed(self, failure: Failure) -> None:
        self._inflight = None
        if failure.check(DatabaseNotReady):  # the Redis service reports its own state
            return
        if failure.check(*_REDIS_ERRORS):
            if not self._failing and self.running:
                self._failing = True
                log.warn("Cluster announce failed: {error}", error=_reason(failure))
            return
        log.failure("Unexpected error in the cluster announce", failure)
