"""When the monitor tries a mirror again after its scan failed (spec §20 item 24).

``lastSync`` is written when a scan *starts* (the reference's meaning, which Go nodes read),
so by ``ScanInterval`` alone a mirror whose listing failed waits a whole interval while its
known files may be stale. This node remembers, in memory, the failures of its own monitor
scans: the mirror is due again :data:`FIRST_RETRY` seconds after its first failure in a
row, twice as long after each next one, never later than ``ScanInterval``. A successful scan,
here or on any node (``lastSuccessfulSync`` after the failure), forgets them. A mirror this
node takes over (the cluster changed, the daemon restarted) whose record says its last attempt
failed is due one :data:`FIRST_RETRY` after that attempt: before, a second node joining the
cluster left a failing mirror waiting a whole ``ScanInterval``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import Final

from attrs import define, field, frozen

from mirrorbits.model import Mirror

__all__ = ["FIRST_RETRY", "FailedScans", "ScanRetries", "describe_delay", "last_attempt_failed",
           "retry_delay"]

#: Seconds from a first failure to the next attempt.
FIRST_RETRY: Final = 60.0


def retry_delay(failures: int, interval: float) -> float:
    """Seconds from the ``failures``-th failure in a row to the next attempt: 1 min, 2, 4...,
    at most ``interval`` (``ScanInterval`` in seconds)."""
    doubled = FIRST_RETRY * 2.0 ** min(max(failures, 1) - 1, 32)
    return max(0.0, min(doubled, interval))


def describe_delay(seconds: float) -> str:
    """``seconds`` for the log: ``"45 s"``, ``"2 min"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


@frozen
class FailedScans:
    """The failures in a row of a mirror's monitor scans: how many, when the last one ended,
    when to try again."""

    count: int
    failed_at: float
    retry_at: float


@define
class ScanRetries:
    """The failed monitor scans of this node, per mirror ID."""

    _failed: dict[int, FailedScans] = field(factory=dict)

    def failed(self, mirror_id: int, now: float, interval: float) -> FailedScans:
        """Count a failure ended at ``now``; ``interval``: ``ScanInterval`` in seconds."""
        previous = self._failed.get(mirror_id)
        count = 1 if previous is None else previous.count + 1
        failed = FailedScans(count=count, failed_at=now,
                             retry_at=now + retry_delay(count, interval))
        self._failed[mirror_id] = failed
        return failed

    def succeeded(self, mirror_id: int) -> None:
        """A scan of the mirror succeeded: back to ``ScanInterval``."""
        self._failed.pop(mirror_id, None)

    def retry_at(self, mirror_id: int) -> float | None:
        """When a failed mirror is due again (``None``: no failure remembered)."""
        failed = self._failed.get(mirror_id)
        return None if failed is None else failed.retry_at

    def postpone(self, mirror_id: int, until: float) -> None:
        """Another node is scanning the mirror: not due here before ``until``."""
        failed = self._failed.get(mirror_id)
        if failed is not None:
            self._failed[mirror_id] = FailedScans(failed.count, failed.failed_at, until)

    def keep(self, mirrors: Iterable[Mirror], handles: Callable[[int], bool],
             busy: Container[int], interval: float) -> None:
        """Forget the mirrors that are gone, disabled, scanned by another node
        (``handles``), successfully scanned since their failure (by another node, or the
        CLI there), or tried again elsewhere since; take up, from their records, the mirrors
        this node now scans whose last attempt failed (on another node, before a restart):
        due one :data:`FIRST_RETRY` after it, not a whole ``interval``."""
        current = {mirror.id: mirror for mirror in mirrors}
        for mirror_id, failed in list(self._failed.items()):
            mirror = current.get(mirror_id)
            if (mirror is None or not mirror.enabled or _succeeded_since(mirror, failed)
                    or _tried_since(mirror, failed) or not handles(mirror_id)):
                del self._failed[mirror_id]
        for mirror in current.values():
            if (mirror.id not in self._failed and mirror.id not in busy and mirror.enabled
                    and last_attempt_failed(mirror) and handles(mirror.id)):
                started = float(mirror.last_sync or 0)
                self._failed[mirror.id] = FailedScans(
                    count=1, failed_at=started, retry_at=started + retry_delay(1, interval))


def last_attempt_failed(mirror: Mirror) -> bool:
    """Whether the mirror's record says its last scan attempt, on any node, has not
    succeeded (failed, or still running): ``lastSync``, written when a scan starts, is later
    than ``lastSuccessfulSync`` (a success writes both, with the same time), or there was
    never a success."""
    return mirror.last_sync is not None and (
        mirror.last_successful_sync is None or mirror.last_successful_sync < mirror.last_sync)


def _tried_since(mirror: Mirror, failed: FailedScans) -> bool:
    return mirror.last_sync is not None and mirror.last_sync > failed.failed_at


def _succeeded_since(mirror: Mirror, failed: FailedScans) -> bool:
    return (mirror.last_successful_sync is not None
            and mirror.last_successful_sync >= int(failed.failed_at))
