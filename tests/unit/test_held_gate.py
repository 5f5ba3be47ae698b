"""The held connections' opening gate (pure timing): a lost connection is opened again at
once; openings are one per ``gap`` on average, two in a row at most."""

from __future__ import annotations

from itertools import pairwise

import pytest
from twisted.internet.task import Clock

from mirrorbits.health.held import OpeningGate


def test_a_first_opening_and_one_after_a_long_held_connection_are_at_once() -> None:
    gate, clock = OpeningGate(), Clock()
    assert gate.delay((1, 1), clock.seconds(), 3.0) == 0.0
    gate.opening((1, 1), clock.seconds(), 3.0)
    clock.advance(40)  # held for 40 s, then lost: opened again at once
    assert gate.delay((1, 1), clock.seconds(), 3.0) == 0.0


def test_a_server_closing_at_once_gets_one_connection_per_gap() -> None:
    gate, clock = OpeningGate(), Clock()
    openings = []
    for _ in range(1000):  # lost as soon as made: every 10 ms someone asks to open again
        if gate.delay((1, 1), clock.seconds(), 3.0) == 0.0:
            gate.opening((1, 1), clock.seconds(), 3.0)
            openings.append(clock.seconds())
        clock.advance(0.01)
    assert len(openings) == 5  # 0 and at once again, then 3, 6, 9 s over 10 s
    assert openings[1] - openings[0] < 0.02
    assert all(later - earlier >= 2.99 for earlier, later in pairwise(openings[1:]))


def test_a_connection_lost_soon_after_it_was_opened_is_opened_again_at_once() -> None:
    gate, clock = OpeningGate(), Clock()
    gate.opening((1, 1), clock.seconds(), 3.0)
    clock.advance(0.5)
    assert gate.delay((1, 1), clock.seconds(), 3.0) == 0.0


def test_after_two_in_a_row_the_delay_is_what_is_left_of_the_gap() -> None:
    gate, clock = OpeningGate(), Clock()
    gate.opening((1, 1), clock.seconds(), 3.0)
    gate.opening((1, 1), clock.seconds(), 3.0)
    clock.advance(1.25)
    assert gate.delay((1, 1), clock.seconds(), 3.0) == pytest.approx(1.75)
    assert gate.delay((1, 2), clock.seconds(), 3.0) == 0.0  # each endpoint on its own


def test_endpoints_no_longer_followed_are_forgotten() -> None:
    gate, clock = OpeningGate(), Clock()
    gate.opening((1, 1), clock.seconds(), 3.0)
    gate.opening((2, 1), clock.seconds(), 3.0)
    gate.opening((2, 1), clock.seconds(), 3.0)
    gate.opening((1, 1), clock.seconds(), 3.0)
    gate.keep_only([(2, 1)])
    assert gate.delay((1, 1), clock.seconds(), 3.0) == 0.0
    assert gate.delay((2, 1), clock.seconds(), 3.0) == 3.0
