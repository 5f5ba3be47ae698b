"""Wrong control passwords: counted per source, refused for a doubling time, then forgotten."""

from __future__ import annotations

from twisted.internet.task import Clock

from mirrorbits.control.server import same_password
from mirrorbits.control.throttle import (
    FIRST_BLOCK,
    FORGET_AFTER,
    FREE_FAILURES,
    LONGEST_BLOCK,
    FailedPasswords,
    source_of,
)


def test_the_first_failures_are_free_then_the_block_doubles_up_to_a_limit() -> None:
    clock = Clock()
    failures = FailedPasswords(clock)
    for _ in range(FREE_FAILURES):
        assert failures.failed("10.0.0.1") == 0
        assert failures.refused_for("10.0.0.1") == 0
    blocks = []
    for _ in range(12):
        blocks.append(failures.failed("10.0.0.1"))
        assert failures.refused_for("10.0.0.1") == blocks[-1]
        clock.advance(blocks[-1])
        assert failures.refused_for("10.0.0.1") == 0
    assert blocks[:4] == [FIRST_BLOCK, 2 * FIRST_BLOCK, 4 * FIRST_BLOCK, 8 * FIRST_BLOCK]
    assert blocks[-1] == LONGEST_BLOCK


def test_other_sources_and_a_right_password_start_from_zero() -> None:
    clock = Clock()
    failures = FailedPasswords(clock)
    for _ in range(FREE_FAILURES + 1):
        failures.failed("10.0.0.1")
    assert failures.refused_for("10.0.0.1") > 0
    assert failures.refused_for("10.0.0.2") == 0
    failures.succeeded("10.0.0.1")
    assert failures.refused_for("10.0.0.1") == 0
    assert failures.failed("10.0.0.1") == 0


def test_an_old_count_is_forgotten() -> None:
    clock = Clock()
    failures = FailedPasswords(clock)
    for _ in range(FREE_FAILURES):
        failures.failed("10.0.0.1")
    clock.advance(FORGET_AFTER + 1)
    assert failures.failed("10.0.0.1") == 0


def test_memory_is_bounded_the_oldest_source_goes_first() -> None:
    failures = FailedPasswords(Clock(), max_sources=3)
    for number in range(5):
        for _ in range(FREE_FAILURES + 1):
            failures.failed(f"10.0.0.{number}")
    assert len(failures) == 3
    assert failures.refused_for("10.0.0.0") == 0
    assert failures.refused_for("10.0.0.4") > 0


def test_sources() -> None:
    assert source_of("127.0.0.2") == "127.0.0.2"
    assert source_of("::ffff:10.1.2.3") == "10.1.2.3"
    assert source_of("2001:db8:1:2:3:4:5:6") == source_of("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert source_of(None) == source_of("") == "local"


def test_passwords_compared_whole() -> None:
    assert same_password("secret", "secret")
    assert same_password("", "")
    assert not same_password("secret", "secre")
    assert not same_password("secret", "secret ")
    assert not same_password("", "x")
    assert same_password("pässwörd", "pässwörd")
