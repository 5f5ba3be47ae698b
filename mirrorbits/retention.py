"""``StatsRetention``: which dated download counters are too old (pure), and the service that
deletes them, one bounded step per tick (:mod:`mirrorbits.store.retention`).

A pass walks every ``STATS_*`` key with ``SCAN``, one step a second, and starts again an hour
after it ended (at once after a reload). Daily counters older than ``Days`` days and monthly
ones older than ``Months`` months go; yearly and all-time counters stay.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Final

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from mirrorbits.config import Config, StatsRetention
from mirrorbits.logs import Logger
from mirrorbits.stats import utc_date
from mirrorbits.store import keys, outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import REDIS_FAILURES, DatabaseNotReady
from mirrorbits.store.retention import delete_expired_stats
from mirrorbits.ticking import start_loop, stop_loop

__all__ = ["PASS_INTERVAL", "RETRY_INTERVAL", "TICK", "RetentionService", "expired_stats"]

log = Logger(namespace="mirrorbits.retention")

#: Seconds between two steps of a pass.
TICK: Final = 1.0
#: Seconds between the end of a pass and the start of the next.
PASS_INTERVAL: Final = 3600.0
#: Seconds before a pass that failed (Redis away) starts again.
RETRY_INTERVAL: Final = 60.0


def expired_stats(retention: StatsRetention, today: date) -> Callable[[str], bool]:
    """Whether a key is a counter older than ``retention`` allows, on the UTC day ``today``.

    ``Days: N`` keeps today and the N-1 days before; ``Months: M`` keeps this month and the
    M-1 months before.
    """
    first_day = today - timedelta(days=retention.days)
    this_month = today.year * 12 + today.month - 1

    def expired(key: str) -> bool:
        period = keys.stats_key_period(key)
        if period is None:
            return False
        year, month, day = period
        if day:
            if not retention.days:
                return False
            try:
                return date(year, month, day) <= first_day
            except ValueError:  # not a date: not ours to judge
                return False
        if month:
            return bool(retention.months) and 1 <= month <= 12 and (
                year * 12 + month - 1 <= this_month - retention.months)
        return False

    return expired


@define(eq=False)
class RetentionService(Service):
    """Deletes expired counters in the background (once per node: monitoring nodes)."""

    _get_config: Callable[[], Config]
    _get_client: Callable[[], RedisClient]  # or raises DatabaseNotReady
    _clock: IReactorTime
    _unlink: Callable[[], bool] = lambda: True  # whether Redis has UNLINK (4.0+)
    _cursor: str | None = field(default=None, init=False)  # None: between passes
    _next_pass: float = field(default=0.0, init=False)
    _deleted: int = field(default=0, init=False)
    _loop: LoopingCall | None = field(default=None, init=False)
    _failing: bool = field(default=False, init=False)

    name = "stats-retention"

    @property
    def in_pass(self) -> bool:
        """Whether a pass is under way (its ``SCAN`` not over)."""
        return self._cursor is not None

    @property
    def deleted_in_pass(self) -> int:
        """Keys deleted by the current pass (or the last one)."""
        return self._deleted

    def startService(self) -> None:
        super().startService()
        self._loop = start_loop(self.step, self._clock, TICK, now=False, log=log,
                                stopped="The statistics retention stopped")

    def stopService(self) -> None:
        super().stopService()
        stop_loop(self._loop)
        self._loop = None

    def config_changed(self) -> None:
        """A reload may have shortened the retention: the next pass starts at once."""
        if self._cursor is None:
            self._next_pass = 0.0

    def step(self) -> Deferred[None]:
        """One tick: a step of the current pass, or of a new one when it is due."""
        stepping = Deferred.fromCoroutine(self._step())

        def failed(failure: Failure) -> None:
            if failure.check(*REDIS_FAILURES):
                if not self._failing:  # once until a step works again
                    log.warn("Statistics retention paused ({error}): tried again every "
                             "{delay:g} s", error=str(failure.value) or
                             type(failure.value).__name__, delay=RETRY_INTERVAL)
                self._failing = True
            else:
                outage.report(log, "Statistics retention", failure,
                              "Deleting old statistics failed")
            self._cursor = None
            self._next_pass = self._clock.seconds() + RETRY_INTERVAL

        return stepping.addErrback(failed)

    async def _step(self) -> None:
        retention = self._get_config().stats_retention
        if not (retention.days or retention.months):
            self._cursor = None
            return
        now = self._clock.seconds()
        if self._cursor is None and now < self._next_pass:
            return
        try:
            client = self._get_client()
        except DatabaseNotReady:
            return
        if self._cursor is None:
            self._cursor, self._deleted = "0", 0
        done = await delete_expired_stats(client, self._cursor,
                                          expired_stats(retention, utc_date(now)),
                                          unlink=self._unlink())
        self._deleted += done.deleted
        self._failing = False
        if done.cursor != "0":
            self._cursor = done.cursor
            return
        if self._deleted:
            log.info("Statistics retention: {count} old counters deleted", count=self._deleted)
        self._cursor = None
        self._next_pass = now + PASS_INTERVAL
