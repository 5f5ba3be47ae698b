"""The counts of several processes as one (``Workers: N``): what a worker reports, and the
sum the main process shows (pure).

A worker answers the main process' question with one line, ``counts <JSON>``; it sends one
more as it stops, so the downloads it answered since the last scrape are not lost. The main
process keeps each worker's last report, and adds a worker's last report to the totals of
ended workers when it exits: the sums only grow while the main process runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from attrs import define, field, frozen

from mirrorbits.metrics.counts import RequestCounts

PREFIX = b"counts "


@frozen
class CountsReport:
    """One process' counts (requests by outcome, redirects by mirror) and cache sizes."""

    outcomes: Mapping[str, int] = field(factory=dict)
    redirects: Mapping[str, int] = field(factory=dict)
    caches: Mapping[str, int] = field(factory=dict)


def report_of(counts: RequestCounts, caches: Mapping[str, int]) -> CountsReport:
    """A copy of ``counts`` (the request path goes on counting)."""
    return CountsReport(dict(counts.outcomes), dict(counts.redirects), dict(caches))


def encode(report: CountsReport) -> bytes:
    """The line a worker sends."""
    document = {"outcomes": report.outcomes, "redirects": report.redirects,
                "caches": report.caches}
    return PREFIX + json.dumps(document, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> CountsReport | None:
    """The report of a line written by :func:`encode` (without its newline); None for any
    other line."""
    if not line.startswith(PREFIX):
        return None
    try:
        document = json.loads(line[len(PREFIX):])
        return CountsReport(_counts(document["outcomes"]), _counts(document["redirects"]),
                            _counts(document["caches"]))
    except (ValueError, KeyError, TypeError):
        return None


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return {str(key): int(count) for key, count in value.items()}


def add(reports: Iterable[CountsReport]) -> CountsReport:
    """The sum of ``reports``, name by name."""
    outcomes: dict[str, int] = {}
    redirects: dict[str, int] = {}
    caches: dict[str, int] = {}
    for report in reports:
        for total, part in ((outcomes, report.outcomes), (redirects, report.redirects),
                            (caches, report.caches)):
            for name, count in part.items():
                total[name] = total.get(name, 0) + count
    return CountsReport(outcomes, redirects, caches)


@define
class ProcessTotals:
    """The main process' view: each running worker's last report, and what ended workers
    counted (their cache sizes are gone with them)."""

    last: dict[int, CountsReport] = field(factory=dict)  # by worker pid
    ended: CountsReport = field(factory=CountsReport)

    def reported(self, pid: int, report: CountsReport) -> None:
        self.last[pid] = report

    def worker_ended(self, pid: int) -> None:
        report = self.last.pop(pid, None)
        if report is not None:
            self.ended = add([self.ended, CountsReport(report.outcomes, report.redirects)])

    def total(self) -> CountsReport:
        return add([self.ended, *self.last.values()])
