"""When the monitor tries a mirror again after its scan failed (spec §20 item 24).

``lastSync`` is written when a scan *starts* (the reference's meaning, which Go nodes read),
so by ``ScanInterval`` alone a mirror whose listing failed waits a whole interval while its
known files may be stale. This node remembers, in memory, the failures of its own monitor
scans: the mirror is due again :data:`FIRST_RETRY` seconds after its first failure in a
row, twice as long after each next one, never later than ``ScanInterval``. A successful scan,
here or on any node (``lastSuccessfulSync`` after the failure), forgets them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from attrs import define, field, frozen

from mirrorbits.model import Mirror

__all__ = ["FIRST_RETRY", "FailedScans", "ScanRetries", "describe_delay", "retry_delay"]

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

    def keep(self, mirrors: Iterable[Mirror], handles: Callable[[int], bool]) -> None:
        """Forget the mirrors that are gone, disabled, scanned by another node
        (``handles``), or successfully scanned since their failure (by another node, or
        the CLI there)."""
        if not self._failed:
            return
        current = {mirror.id: mirror for mirror in mirrors}
        for mirror_id, failed in list(self._failed.items()):
            mirror = current.get(mirror_id)
            if (mirror is None or not mirror.enabled or _succeeded_since(mirror, failed)
                    or not handles(mirror_id)):
                del self._failed[mirror_id]


def _succeeded_since(mirror: Mirror, failed: FailedScans) -> bool:
    return (mirror.last_successful_sync is not None
            and mirror.last_successful_sync >= int(failed.failed_at))
