"""The monitoring services' last results, kept for the metrics (pure, in memory).

The health checker reports how long each mirror's check took, the mirror scanner how long
each scan took and how many files it listed. Keyed by mirror id: the names are read from the
mirror records when scraped (a renamed mirror keeps its numbers).
"""

from __future__ import annotations

from attrs import define, field, frozen


@frozen
class ScanObservation:
    """A finished scan: its duration and the files it listed."""

    seconds: float
    files: int


@define
class Observations:
    """Per mirror: the last check's duration, the last successful scan."""

    check_seconds: dict[int, float] = field(factory=dict)
    scans: dict[int, ScanObservation] = field(factory=dict)

    def checked(self, mirror_id: int, seconds: float) -> None:
        self.check_seconds[mirror_id] = seconds

    def scanned(self, mirror_id: int, seconds: float, files: int) -> None:
        self.scans[mirror_id] = ScanObservation(seconds, files)
