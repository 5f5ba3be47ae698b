"""A mirror that refuses the checker, not the users (pure rules and in-memory memory).

* ``HEAD`` answered :data:`HEAD_REFUSED` (a WAF or CDN that takes ``HEAD`` for a bot): the same
  file is asked at once with ``GET`` and ``Range: bytes=0-0``; :class:`HeadRefusals` remembers
  the mirror, whose next checks go straight to that ``GET`` (``HEAD`` is tried again after
  :data:`RETRY_HEAD_AFTER` seconds).
* ``429`` (rate limited): the mirror keeps its state (:class:`RateLimits` counts the refusals in
  a row) until :data:`REFUSALS_BEFORE_DOWN` checks in a row or :data:`REFUSED_FOR_AT_MOST`
  seconds; its next check honours ``Retry-After`` (:func:`next_check_in`), as after a ``503``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from datetime import UTC
from email.utils import parsedate_to_datetime

from attrs import define, field, frozen

__all__ = ["DEFERRING", "HEAD_REFUSED", "MAX_WAIT", "RATE_LIMITED", "REASON_RATE_LIMITED",
           "REFUSALS_BEFORE_DOWN",
           "REFUSED_FOR_AT_MOST", "RETRY_HEAD_AFTER", "HeadRefusals", "RateLimits", "Streak",
           "content_range_total", "next_check_in", "retry_after_seconds"]

#: Answers to ``HEAD`` that have the file asked again with a ranged ``GET``.
HEAD_REFUSED = frozenset({403, 405, 501})
#: Seconds before a mirror that refused ``HEAD`` is sent a ``HEAD`` again.
RETRY_HEAD_AFTER = 3600.0
RATE_LIMITED = 429
#: The down reason of a mirror refusing the checker (``list -down``), said with the bound met.
REASON_RATE_LIMITED = "Rate limited (error 429)"
#: Answers whose ``Retry-After`` delays the mirror's next check.
DEFERRING = frozenset({429, 503})
#: ``Retry-After`` is honoured up to this many seconds.
MAX_WAIT = 600.0
#: A mirror answering 429 is marked down at this many checks in a row...
REFUSALS_BEFORE_DOWN = 3
#: ... or once it has answered nothing but 429 for this many seconds.
REFUSED_FOR_AT_MOST = 600.0


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` value asks to wait (delay-seconds or an HTTP-date, in the
    past: 0); ``None`` when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        date = parsedate_to_datetime(text)
        if date.tzinfo is None:  # "-0000": UTC too
            date = date.replace(tzinfo=UTC)
        when = date.timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return max(0.0, when - now)


def next_check_in(retry_after: float | None, interval: float) -> float:
    """Seconds until the next check of a mirror that asked to wait ``retry_after`` seconds:
    never sooner than the check ``interval``, never later than :data:`MAX_WAIT` (or the
    interval, if longer)."""
    if retry_after is None:
        return interval
    return min(max(retry_after, interval), max(interval, MAX_WAIT))


def content_range_total(value: str | None) -> str | None:
    """The whole size of ``Content-Range: bytes 0-0/<total>``; ``None`` when unknown."""
    if value is None:
        return None
    unit, _, rest = value.strip().partition(" ")
    total = rest.rpartition("/")[2].strip()
    return total if unit.lower() == "bytes" and total.isdigit() else None


@frozen
class Streak:
    """The 429 answers of a mirror in a row: how many, and since when."""

    count: int
    since: float

    def past_bound(self, now: float) -> bool:
        """Whether the mirror has refused the checker long enough to be marked down."""
        return (self.count >= REFUSALS_BEFORE_DOWN
                or now - self.since >= REFUSED_FOR_AT_MOST)

    def reason(self, now: float) -> str:
        """The down reason (``list -down``): which bound was reached."""
        if self.count >= REFUSALS_BEFORE_DOWN:
            return f"{REASON_RATE_LIMITED} for {REFUSALS_BEFORE_DOWN} checks in a row"
        return f"{REASON_RATE_LIMITED} for {REFUSED_FOR_AT_MOST / 60:.0f} min"


@define
class RateLimits:
    """Per key (a mirror and protocol), its current streak of 429 answers."""

    _streaks: dict[Hashable, Streak] = field(factory=dict)

    def answered(self, key: Hashable, status: int | None, now: float) -> Streak | None:
        """Record the answer ``status`` (``None``: none); the streak it makes, if a 429."""
        if status != RATE_LIMITED:
            self._streaks.pop(key, None)
            return None
        before = self._streaks.get(key)
        streak = Streak(1, now) if before is None else Streak(before.count + 1, before.since)
        self._streaks[key] = streak
        return streak

    def keep_only(self, keys: Iterable[Hashable]) -> None:
        kept = set(keys)
        self._streaks = {key: value for key, value in self._streaks.items() if key in kept}


@define
class HeadRefusals:
    """The mirrors (keys) found refusing ``HEAD``, and when that was last seen."""

    _seen: dict[Hashable, float] = field(factory=dict)

    def skip_head(self, key: Hashable, now: float) -> bool:
        """Whether to ask ``key`` with the ranged ``GET`` straight away."""
        when = self._seen.get(key)
        return when is not None and now - when < RETRY_HEAD_AFTER

    def refused(self, key: Hashable, now: float) -> bool:
        """``key`` refused ``HEAD`` and answered the ``GET``; whether that is news."""
        news = key not in self._seen
        self._seen[key] = now
        return news

    def accepted(self, key: Hashable) -> None:
        """``key`` answered ``HEAD`` again."""
        self._seen.pop(key, None)
