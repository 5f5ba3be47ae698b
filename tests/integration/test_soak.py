"""A short run of ``bench/soak`` (the full one lasts ten minutes; see docs/reliability.md):
load, publications, reloads, scans and one upgrade at once, with no failed request or
command and no descriptor leak."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.soak import run

pytestmark = pytest.mark.integration


def test_a_short_soak_fails_nothing_and_leaks_no_descriptor(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    status = run.main(["--seconds", "24", "--warmup-seconds", "4", "--churn-every", "2",
                       "--connections", "10", "--json", str(report),
                       "--workdir", str(tmp_path / "work")])
    figures = json.loads(report.read_text())
    assert status == 0, figures
    assert figures["failed"] == 0 and figures["requests"] > 1_000
    # a loaded machine runs fewer commands (each one a process start) and upgrades slowly
    # (3 in a parallel test run, the upgrade included): what counts is that none failed and
    # that the successor took over
    assert figures["control_commands"] >= 2 and figures["control_failures"] == []
    assert figures["upgraded"] is True
