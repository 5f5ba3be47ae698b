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
    status = run.main(["--files", "40", "--before", "4", "--churn", "12", "--settled", "6",
                       "--publish-every", "2", "--max-lag", "5", "--down-seconds", "4",
                       "--deleted", "4", "--json", str(report),
                       "--workdir", str(tmp_path / "work")])
    figures = json.loads(report.read_text())
    assert status == 0, figures
    phases = figures["phases"]
    assert [phases[name]["requests"] for name in ("before", "churn", "settled")] == [80, 240, 120]
    assert phases["all"]["requests"] == 440 and figures["versions_published"] == 18
    assert phases["before"]["right_percent"] == 100.0  # nothing changed yet
    for row in phases.values():
        wrong = sum(row["wrong"].values())
        assert row["right_bytes"] + wrong == row["requests"]
        assert set(row["wrong"]) <= {*run.CAUSES, "fallback_wrong"}
    assert figures["timeline_errors"] == []
