"""bench/redirect/run.py with a reference (Go) Mirrorbits: its start-up failures and its
verification are reported like the daemon's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.redirect import run
from bench.redirect.loadgen import LoadResult
from tests.servers import free_port


def _result(rate: int) -> LoadResult:
    return LoadResult(requests=rate * 10, seconds=10.0, ok_302=rate * 10, other_status=0,
                      bad_location=0, socket_errors=0, p50_ms=1.0, p90_ms=2.0, p99_ms=3.0,
                      first_bad="", command="wrk")


def test_a_reference_that_exits_is_reported_with_the_last_line_of_its_log(
        tmp_path: Path) -> None:
    binary = tmp_path / "mirrorbits"
    binary.write_text("#!/bin/sh\necho 'Configuration could not be found.'\n"
                      "printf '\\tUse -config <path>\\n'\nexit 1\n")
    binary.chmod(0o755)
    log_path = tmp_path / "reference.log"
    with open(log_path, "wb") as output:
        process = subprocess.Popen([str(binary)], stdout=output, stderr=subprocess.STDOUT)
    with pytest.raises(SystemExit) as raised:
        run.wait_listening(process, free_port(), log_path, "--reference x", timeout=20)
    assert str(raised.value) == "--reference x: exited with status 1: Use -config <path>"


def test_wrong_reference_answers_are_reported_and_void_the_figures(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = run.parse_args(["--reference", "/nonexistent/mirrorbits"])
    verify = {"daemon_checked": 150, "daemon_wrong": 0, "daemon_cold_rps": 1, "expected": 150,
              "bare_checked": 100, "bare_wrong": 0, "reference_checked": 150,
              "reference_wrong": 3}
    summary = run.report(args, verify, [[_result(100), _result(80), _result(40)]])
    out = capsys.readouterr().out
    assert "baseline 100 checked, 0 wrong; reference 150 checked, 3 wrong" in out
    assert "WARNING 3 wrong answers" in out
    assert summary["wrong_answers"] == 3
    assert summary["reference_ratio"] == 2.0
