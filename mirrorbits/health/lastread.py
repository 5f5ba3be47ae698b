"""The mirror list a round of checks works from: read from Redis at each round, and the list
last read while Redis cannot be read, so that a node goes on checking through an outage."""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.store import outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.mirrors import MirrorStore

MIRRORS_TIMEOUT = 30.0  # bound on reading the mirror list in one round


@define(eq=False)
class LastReadMirrors:
    """Reads the mirror list for ``service`` (as its outage line names it, on ``log``;
    ``failed``: what a failure other than Redis' is logged as), with ``read_client`` if
    given (the master's or, while Redis is a replica, the replica's), else ``get_client``."""

    get_client: Callable[[], RedisClient]
    store: MirrorStore
    reactor: IReactorTime
    log: Logger
    service: str
    failed: str
    read_client: Callable[[], RedisClient] | None = None
    known: list[Mirror] | None = field(default=None, init=False)  # the list last read

    async def read(self) -> tuple[list[Mirror], bool]:
        """The mirrors, and whether they were read now; while Redis cannot be read, those
        last read (none yet: the failure is raised, and the round skipped)."""
        try:
            if self.read_client is None:
                self.get_client()  # raises DatabaseNotReady
                reading = Deferred.fromCoroutine(self.store.all_mirrors())
            else:
                reading = Deferred.fromCoroutine(self.store.all_mirrors(self.read_client()))
            mirrors: list[Mirror] = await reading.addTimeout(MIRRORS_TIMEOUT, self.reactor)
        except Exception as err:
            if self.known is None or outage.redis_cause(err) is None:
                raise
            if not isinstance(err, DatabaseNotReady):  # the Redis service says that one
                outage.report(self.log, self.service, Failure(), self.failed)
            return self.known, False
        self.known = mirrors
        return mirrors, True
