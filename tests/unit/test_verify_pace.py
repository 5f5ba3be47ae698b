"""How many files of a mirror are verified each turn (mirrorbits.health.pace): pure, with
the seconds passed by hand."""

from __future__ import annotations

import pytest

from mirrorbits.health.pace import MAX_PER_TURN, VERIFY_PER_USER, Pace, UsersSent, heads_per_turn


def test_an_idle_mirror_keeps_one_head_per_turn() -> None:
    assert heads_per_turn(0.0, 2.0) == 1.0
    assert heads_per_turn(0.5, 2.0) == 1.0  # half a HEAD wanted: the base rate still


def test_a_busy_mirror_gets_one_head_per_two_users_up_to_the_cap() -> None:
    assert VERIFY_PER_USER == 0.5
    assert heads_per_turn(3.3, 2.0) == pytest.approx(3.3)  # the bench: 3.3 users a second
    assert heads_per_turn(2.0, 3.0) == pytest.approx(3.0)
    assert heads_per_turn(1000.0, 2.0) == MAX_PER_TURN
    assert heads_per_turn(1000.0, 30.0) == MAX_PER_TURN  # per turn, whatever its length


def test_users_sent_is_the_counter_growth_over_the_time_between_readings() -> None:
    users = UsersSent()
    users.read({1: 500, 2: 10}, 100.0)
    assert users.per_second(1) == 0.0  # one reading: no rate yet
    users.read({1: 599, 2: 10, 3: 30}, 130.0)
    assert users.per_second(1) == pytest.approx(3.3)
    assert users.per_second(2) == 0.0
    assert users.per_second(3) == pytest.approx(1.0)  # new today: counted from zero
    assert users.per_second(4) == 0.0
    users.read({1: 60}, 160.0)  # a new day's counter
    assert users.per_second(1) == pytest.approx(2.0)
    assert users.per_second(2) == 0.0


def test_the_turns_carry_fractions_and_never_pass_the_cap() -> None:
    pace = Pace()
    pace.users.read({1: 0, 2: 0, 3: 0}, 0.0)
    pace.users.read({1: 99, 2: 0, 3: 100_000}, 30.0)  # 3.3, 0 and 3,333 users a second
    busy = [pace.turn(1, 2.0) for _ in range(10)]
    idle = [pace.turn(2, 2.0) for _ in range(10)]
    flooded = [pace.turn(3, 2.0) for _ in range(10)]
    assert sum(busy) == 33 and set(busy) == {3, 4}
    assert idle == [1] * 10
    assert flooded == [MAX_PER_TURN] * 10


def test_a_mirror_no_longer_verified_loses_its_carried_fraction() -> None:
    pace = Pace()
    pace.users.read({1: 0}, 0.0)
    pace.users.read({1: 45}, 30.0)  # 1.5 a second: 1.5 a turn of 2 s
    assert pace.turn(1, 2.0) == 1
    pace.forget_others({2})
    assert pace.turn(1, 2.0) == 1  # the half carried was forgotten
    assert pace.turn(1, 2.0) == 2
