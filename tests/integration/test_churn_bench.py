"""A short run of ``bench/churn`` (the full one lasts about four minutes; see
docs/freshness.md): the timeline runs against a real daemon and six mirrors, and the report
counts every request, per phase and per cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.churn import run

pytestmark = pytest.mark.integration


def test_a_short_churn_reports_right_bytes_per_phase_and_cause(tmp_path: Path) -> None:
    report = tmp_path / "churn.json"
    # four publications of three files; the last copies land 3 s at most after the last one,
    # before the settled phase ends
    status = run.main(["--files", "40", "--before", "2", "--churn", "8", "--settled", "4",
                       "--publish-every", "2", "--max-lag", "3", "--down-seconds", "3",
                       "--deleted", "4", "--json", str(report),
                       "--workdir", str(tmp_path / "work")])
    figures = json.loads(report.read_text())
    assert status == 0, figures
    phases = figures["phases"]
    assert [phases[name]["requests"] for name in ("before", "churn", "settled")] == [40, 160, 80]
    assert phases["all"]["requests"] == 280 and figures["versions_published"] == 12
    assert phases["before"]["right_percent"] == 100.0  # nothing changed yet
    for row in phases.values():
        wrong = sum(row["wrong"].values())
        assert row["right_bytes"] + wrong == row["requests"]
        assert set(row["wrong"]) <= {*run.CAUSES, "fallback_wrong"}
    assert figures["timeline_errors"] == []
