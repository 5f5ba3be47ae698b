"""Scheduling of the health checks, driven by a Clock (no network, no Redis).

The per-mirror check (``_check_protocols``) is replaced by one that records the call and
waits on a Deferred the test controls; the mirror list comes from a plain list.
"""

from __future__ import annotations

from typing import Any, cast

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from mirrorbits.config import Config
from mirrorbits.health import HealthChecker
from mirrorbits.model import Mirror
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.mirrors import MirrorStore


class Mirrors:
    """Stands for MirrorStore.all_mirrors: a list the test edits, or an error to raise."""

    def __init__(self, mirrors: list[Mirror]) -> None:
        self.mirrors = mirrors
        self.error: Exception | None = None

    async def all_mirrors(self) -> list[Mirror]:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return list(self.mirrors)


@define(eq=False)
class RecordingChecker(HealthChecker):
    """A HealthChecker whose checks are recorded and finished by the test."""

    calls: list[int] = field(factory=list, init=False)
    blockers: dict[int, Deferred[None]] = field(factory=dict, init=False)
    block: bool = field(default=False, init=False)
    fail: bool = field(default=False, init=False)

    async def _check_protocols(self, mirror: Mirror, width: int) -> None:
        self.calls.append(mirror.id)
        if self.fail:
            raise RuntimeError("boom")
        if self.block:
            blocker: Deferred[None] = Deferred()
            self.blockers[mirror.id] = blocker
            await blocker


def mirror(mid: int, enabled: bool = True) -> Mirror:
    return Mirror(id=mid, name=f"m{mid}", http_url=f"http://m{mid}.example/", enabled=enabled)


def make(mirrors: list[Mirror], config: Config | None = None,
         ready: list[bool] | None = None) -> tuple[RecordingChecker, Clock, Mirrors]:
    clock = Clock()
    source = Mirrors(mirrors)
    state = ready if ready is not None else [True]

    def get_client() -> Any:
        if not state[0]:
            raise DatabaseNotReady("database not ready")
        return object()

    store = cast(MirrorStore, source)
    checker = RecordingChecker(lambda: config or Config(), get_client, store, clock,
                               agent_factory=lambda _admit: cast(Any, None))
    return checker, clock, source


def test_enabled_mirrors_are_checked_at_start_then_once_per_interval() -> None:
    checker, clock, _ = make([mirror(1), mirror(2, enabled=False), mirror(3)])
    checker.startService()
    assert checker.calls == [1, 3]
    clock.advance(60)  # exactly CheckInterval after the check: not due yet
    assert checker.calls == [1, 3]
    clock.advance(1)
    assert checker.calls == [1, 3, 1, 3]
    checker.stopService()


def test_a_mirror_enabled_later_is_checked_at_the_next_tick() -> None:
    checker, clock, source = make([mirror(1)])
    checker.startService()
    source.mirrors.append(mirror(2))
    clock.advance(1)
    assert checker.calls == [1, 2]
    checker.stopService()


def test_at_most_ten_checks_run_at_once_and_a_mirror_is_never_queued_twice() -> None:
    checker, clock, _ = make([mirror(i) for i in range(1, 16)], Config(check_interval=0))
    checker.block = True
    checker.startService()
    assert checker.calls == list(range(1, 11))
    assert checker.in_flight == frozenset(range(1, 16))
    clock.advance(5)  # the waiting five are not queued again, the running ten not restarted
    assert checker.calls == list(range(1, 11))
    checker.blockers[4].callback(None)
    assert checker.calls == [*range(1, 11), 11]
    assert 4 not in checker.in_flight
    checker.stopService()


def test_a_failing_round_or_check_does_not_stop_the_loop() -> None:
    checker, clock, source = make([mirror(1)])
    source.error = RuntimeError("redis exploded")
    checker.fail = True
    checker.startService()
    assert checker.calls == []
    clock.advance(1)
    assert checker.calls == [1]  # the failed check still counts as done
    clock.advance(30)
    assert checker.calls == [1]
    checker.fail = False
    clock.advance(31)
    assert checker.calls == [1, 1]
    checker.stopService()


def test_no_round_while_the_database_is_not_ready() -> None:
    ready = [False]
    checker, clock, _ = make([mirror(1)], ready=ready)
    checker.startService()
    clock.advance(3)
    assert checker.calls == []
    ready[0] = True
    clock.advance(1)
    assert checker.calls == [1]
    checker.stopService()


def test_a_skipped_check_is_retried_at_the_next_interval() -> None:
    # An empty HANDLEDFILES makes _check_protocols return without recording anything;
    # the mirror must come back one interval later (the reference never checked it again).
    checker, clock, _ = make([mirror(1)], Config(check_interval=2))
    checker.startService()
    clock.advance(120)
    assert checker.calls == [1]
    clock.advance(1)
    assert checker.calls == [1, 1]
    checker.stopService()


def test_stopping_cancels_checks_in_flight_and_the_loop() -> None:
    checker, clock, _ = make([mirror(1), mirror(2)], Config(check_interval=0))
    checker.block = True
    checker.startService()
    blockers = dict(checker.blockers)
    idle = checker.when_idle()
    stopped = checker.stopService()
    assert stopped.called and idle.called
    assert checker.in_flight == frozenset()
    assert all(blocker.called for blocker in blockers.values())
    clock.advance(10)
    assert checker.calls == [1, 2]
