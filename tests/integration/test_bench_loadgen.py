"""The redirect bench's wrk runs: answers checked one by one in Lua, or only counted.

Counting only must still see every answer and every error status, and must report the load
generator's own CPU, which is what makes the two servers' figures comparable.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.redirect import loadgen
from tests.servers import env_without_proxies, free_port, wait_for_port

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_port() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.redirect.bare", str(port)],
                               cwd=ROOT, env=env_without_proxies())
    try:
        wait_for_port("127.0.0.1", port, timeout=20)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def rotation(tmp_path: Path) -> tuple[Path, Path]:
    paths, ips = tmp_path / "paths.txt", tmp_path / "ips.txt"
    paths.write_text("/a\n/b/c.iso\n")
    ips.write_text("192.0.2.1\n198.51.100.7\n")
    return paths, ips


def test_checked_answers_are_matched_against_the_location_pattern(
        bare_port: int, rotation: tuple[Path, Path]) -> None:
    good = loadgen.run_wrk(f"http://127.0.0.1:{bare_port}", *rotation, "^http://x/$", 1, 1, 4)
    bad = loadgen.run_wrk(f"http://127.0.0.1:{bare_port}", *rotation, "^https://", 1, 1, 4)
    assert good.checked and good.requests > 0
    assert good.ok_302 == good.requests and good.bad_location == 0
    assert bad.bad_location == bad.requests and bad.ok_302 == 0
    assert bad.first_bad == "location http://x/"


def test_counting_only_sees_every_answer_and_reports_the_load_generators_cpu(
        bare_port: int, rotation: tuple[Path, Path]) -> None:
    counted = loadgen.run_wrk(f"http://127.0.0.1:{bare_port}", *rotation, "^https://", 1, 1, 4,
                              check=False)
    assert not counted.checked
    assert counted.requests > 0 and counted.ok_302 == counted.requests
    assert counted.other_status == 0 and counted.bad_location == 0
    assert counted.loadgen_cpu_us is not None and counted.loadgen_cpu_us > 0
    assert counted.command.startswith("MIRRORBITS_BENCH_COUNT_ONLY=1 ")


def test_counting_only_still_counts_error_statuses(rotation: tuple[Path, Path]) -> None:
    """A server answering 404 is not hidden by counting only (wrk's own status count)."""
    port = free_port()
    code = ("import sys\n"
            "from twisted.internet import reactor\n"
            "from twisted.web.resource import NoResource\n"
            "from twisted.web.server import Site\n"
            "reactor.listenTCP(int(sys.argv[1]), Site(NoResource()), interface='127.0.0.1')\n"
            "reactor.run()\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=ROOT,
                               env=env_without_proxies())
    try:
        wait_for_port("127.0.0.1", port, timeout=20)
        counted = loadgen.run_wrk(f"http://127.0.0.1:{port}", *rotation, ".", 1, 1, 4,
                                  check=False)
    finally:
        process.terminate()
        process.wait(10)
    assert counted.requests > 0 and counted.other_status == counted.requests
    assert counted.ok_302 == 0
