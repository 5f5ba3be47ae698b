"""A mirror refusing the checker, not the users (pure): ``HEAD`` refused, 429, Retry-After."""

from __future__ import annotations

from email.utils import formatdate

from twisted.logger import LogLevel

from mirrorbits.health.lost import lost_because
from mirrorbits.health.outcome import ProbeResult, classify
from mirrorbits.health.refusals import (
    HeadRefusals,
    RateLimits,
    Streak,
    content_range_total,
    next_check_in,
    retry_after_seconds,
)

NOW = 1_795_571_680.0


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds(" 0 ", NOW) == 0.0
    assert retry_after_seconds(formatdate(NOW + 90, usegmt=True), NOW) == 90.0
    assert retry_after_seconds("Thu, 01 Jan 2026 00:00:00 -0000", NOW) == 0.0  # past
    for unreadable in (None, "", "-5", "soon", "1.5", "Fri, 99 Foo 2026"):
        assert retry_after_seconds(unreadable, NOW) is None


def test_the_next_check_waits_retry_after_within_bounds() -> None:
    assert next_check_in(None, 60) == 60
    assert next_check_in(5, 60) == 60  # never sooner than the interval
    assert next_check_in(300, 60) == 300
    assert next_check_in(86400, 60) == 600  # ten minutes at most
    assert next_check_in(86400, 1800) == 1800  # ... or the interval, if longer
    assert next_check_in(2, 0) == 2  # CheckInterval: 0


def test_the_size_a_ranged_get_gives() -> None:
    assert content_range_total("bytes 0-0/48213") == "48213"
    assert content_range_total("BYTES 0-0/7") == "7"
    for unknown in (None, "bytes 0-0/*", "items 0-0/5", "bytes 0-0/x", ""):
        assert content_range_total(unknown) is None


def test_a_206_answers_like_a_200() -> None:
    up = classify(ProbeResult(status=206, content_length="10", head_refused=403), "/f", 10)
    assert (up.up, up.message, up.keep_state) == (True, "Up! (0ms)", False)
    other = classify(ProbeResult(status=206, content_length="11"), "/f", 10)
    assert (other.up, other.message) == (True, "File size mismatch! [/f]")
    assert lost_because(ProbeResult(status=206, content_length="11"), 10) == (
        "11 bytes instead of 10")
    assert lost_because(ProbeResult(status=206, content_length="10"), 10) == ""


def test_429_keeps_the_state_until_three_in_a_row_or_ten_minutes() -> None:
    limits = RateLimits()
    key = (1, 1)
    verdicts = []
    for second in (0, 60, 120):
        streak = limits.answered(key, 429, NOW + second)
        verdicts.append(classify(ProbeResult(status=429, retry_after=30.0), "/f", 10, streak,
                                 NOW + second))
    first, second_, third = verdicts
    assert (first.keep_state, first.up, first.reason, first.level, first.retry_after) == (
        True, False, "Rate limited (error 429)", LogLevel.warn, 30.0)
    assert first.condition == second_.condition == "Rate limited! Status: 429"  # said once
    assert second_.keep_state and not third.keep_state
    assert (third.up, third.reason) == (False, "Rate limited (error 429) for 3 checks in a row")
    assert third.message == "Down! Status: 429 (rate limited): 3 checks in a row in 120 s"

    # any other answer ends the streak
    assert limits.answered(key, 200, NOW + 180) is None
    assert limits.answered(key, 429, NOW + 240) == Streak(1, NOW + 240)
    # ten minutes of nothing but 429 (a long Retry-After) is enough too
    late = limits.answered(key, 429, NOW + 840)
    assert late == Streak(2, NOW + 240)
    verdict = classify(ProbeResult(status=429), "/f", 10, late, NOW + 840)
    assert (verdict.keep_state, verdict.reason) == (False, "Rate limited (error 429) for 10 min")
    assert verdict.retry_after is None  # no Retry-After: the usual interval


def test_503_is_down_at_once_and_its_retry_after_is_kept() -> None:
    down = classify(ProbeResult(status=503, retry_after=120.0), "/f", 10)
    assert (down.up, down.keep_state, down.reason, down.retry_after) == (
        False, False, "Got status code 503", 120.0)
    assert classify(ProbeResult(status=500, retry_after=120.0), "/f", 10).retry_after is None


def test_head_refusals_are_remembered_for_an_hour() -> None:
    refusals = HeadRefusals()
    assert not refusals.skip_head("m", NOW)
    assert refusals.refused("m", NOW)  # news: said once
    assert refusals.skip_head("m", NOW + 3599)
    assert not refusals.skip_head("m", NOW + 3600)  # HEAD is tried again
    assert not refusals.refused("m", NOW + 3600)  # still refused: not news
    assert refusals.skip_head("m", NOW + 3601)
    refusals.accepted("m")
    assert not refusals.skip_head("m", NOW + 3602)
