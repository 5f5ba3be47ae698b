"""When an idle control connection is closed (the timing alone, on a fake clock; the real
daemon: tests/integration/test_control_security.py)."""

from __future__ import annotations

from twisted.internet.task import Clock

from mirrorbits.control.idle import (
    ABORT_AFTER,
    IDLE_TIMEOUT,
    UNAUTHENTICATED_TIMEOUT,
    IdleTimeout,
)


def watched() -> tuple[Clock, IdleTimeout, list[float]]:
    """A watched connection; the times it was closed (aborts: negative)."""
    clock = Clock()
    closed: list[float] = []
    idle = IdleTimeout(clock, lambda: closed.append(clock.seconds()),
                       lambda: closed.append(-clock.seconds()))
    idle.connected()
    return clock, idle, closed


def test_without_the_right_password_the_connection_has_a_fixed_time() -> None:
    clock, idle, closed = watched()
    for _ in range(5):  # commands with a wrong password do not extend it
        idle.command_started()
        idle.command_ended()
        clock.advance(UNAUTHENTICATED_TIMEOUT / 5 - 0.01)
    assert closed == []
    clock.advance(0.05)
    assert closed == [UNAUTHENTICATED_TIMEOUT]
    clock.advance(ABORT_AFTER)  # the clean close did not end it: a peer that is gone
    assert closed == [UNAUTHENTICATED_TIMEOUT, -(UNAUTHENTICATED_TIMEOUT + ABORT_AFTER)]


def test_an_authenticated_connection_is_closed_after_idling_not_while_a_command_runs() -> None:
    clock, idle, closed = watched()
    idle.command_started()
    idle.authenticated()
    clock.advance(3 * IDLE_TIMEOUT)  # a long scan
    assert closed == []
    idle.command_ended()
    clock.advance(IDLE_TIMEOUT - 1)
    idle.command_started()  # the next command restarts the count at its end
    idle.authenticated()
    idle.command_ended()
    clock.advance(IDLE_TIMEOUT - 1)
    assert closed == []
    clock.advance(1)
    assert closed == [clock.seconds()]
    idle.disconnected()  # closed cleanly: no abort
    clock.advance(ABORT_AFTER)
    assert len(closed) == 1


def test_a_closed_connection_leaves_no_timer() -> None:
    clock, idle, closed = watched()
    idle.disconnected()
    assert clock.getDelayedCalls() == []
    clock.advance(IDLE_TIMEOUT)
    assert closed == []
