"""The liveness schedule (pure timing): at most one probe per mirror per interval, the
first probes spread over the interval."""

from __future__ import annotations

import random
from itertools import pairwise

from twisted.internet.task import Clock

from mirrorbits.health.liveness import LivenessSchedule, endpoints
from mirrorbits.model import Mirror
from mirrorbits.store.events import PROTO_HTTP, PROTO_HTTPS


def probe_times(schedule: LivenessSchedule, clock: Clock, ids: list[int], interval: float,
                seconds: float, tick: float) -> dict[int, list[float]]:
    """When each mirror is probed over ``seconds``, with a round every ``tick``."""
    times: dict[int, list[float]] = {mirror_id: [] for mirror_id in ids}
    end = clock.seconds() + seconds
    while clock.seconds() < end:
        for mirror_id in schedule.take_due(ids, clock.seconds(), interval):
            times[mirror_id].append(clock.seconds())
        clock.advance(tick)
    return times


def test_never_twice_within_an_interval_even_with_late_rounds() -> None:
    clock = Clock()
    times = probe_times(LivenessSchedule(), clock, [1, 2, 3], 5.0, 60.0, 0.7)
    for probes in times.values():
        gaps = [later - earlier for earlier, later in pairwise(probes)]
        assert all(gap >= 5.0 for gap in gaps), gaps
        assert len(probes) >= 60 / (5.0 + 0.7)  # and no more than one round late


def test_first_probes_are_spread_over_the_interval() -> None:
    clock = Clock()
    times = probe_times(LivenessSchedule(), clock, list(range(10)), 5.0, 5.0, 0.5)
    firsts = sorted(probes[0] for probes in times.values())
    assert firsts == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]


def test_a_new_mirror_is_probed_at_once_and_a_removed_one_forgotten() -> None:
    schedule = LivenessSchedule()
    assert schedule.take_due([1], 0.0, 5.0) == [1]
    assert schedule.take_due([1, 2], 1.0, 5.0) == [2]
    assert schedule.take_due([2], 5.0, 5.0) == []
    assert schedule.take_due([1, 2], 5.5, 5.0) == [1]  # back: new again
    assert schedule.take_due([1, 2], 6.0, 5.0) == [2]


def test_a_new_interval_starts_over() -> None:
    schedule = LivenessSchedule()
    assert schedule.take_due([1], 0.0, 60.0) == [1]
    assert schedule.take_due([1], 1.0, 60.0) == []
    assert schedule.take_due([1], 1.0, 2.0) == [1]


def test_endpoints_are_the_up_protocols() -> None:
    both = Mirror(name="m", http_url="mirror.example.org:8080/pub/", http_up=True,
                  https_up=False)
    assert [(e.proto, e.host, e.port) for e in endpoints(both)] == [
        (PROTO_HTTP, "mirror.example.org", 8080)]
    tls = Mirror(name="t", http_url="https://[::1]/x/", http_up=False, https_up=True)
    assert [(e.proto, e.host, e.port) for e in endpoints(tls)] == [(PROTO_HTTPS, "::1", 443)]
    assert endpoints(Mirror(name="d", http_url="http://down.example/")) == []


def test_rounds_taken_early_keep_the_interval_despite_jitter() -> None:
    """The verification's turns: a round every second, each a few milliseconds late or
    early; a mirror due within half a tick is taken, and the next turn is due an interval
    after this one: 2 s apart on average (taking it half a tick early and counting the
    interval from there made every other turn a tick late: 2.6 s on average)."""
    rng = random.Random(7)
    schedule, taken = LivenessSchedule(), []
    for tick in range(600):
        now = tick + rng.uniform(0.0, 0.05)  # each round's own delay
        if schedule.take_due([1], now, 2.0, early=0.5):
            taken.append(now)
    gaps = [later - earlier for earlier, later in pairwise(taken)]
    assert min(gaps) >= 1.9 and max(gaps) <= 2.1
    assert len(taken) >= 299
    late = LivenessSchedule()
    before = [tick for tick in range(600)
              if late.take_due([1], tick + rng.uniform(0.0, 0.05) + 0.5, 2.0)]
    assert len(before) < 260  # the former call: turns 2.3 s apart or more on average
