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
    assert figures["control_commands"] >= 8 and figures["control_failures"] == []
    assert len({sample["pid"] for sample in figures["samples"]}) == 2  # upgraded once
