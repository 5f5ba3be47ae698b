"""What the benchmarks' runs share: the working directory, the figures written as JSON and
the head of the printed report."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["command_line", "report_head", "work_directory", "write_json"]


def command_line() -> str:
    """The command that started this benchmark, as a shell would take it again."""
    return shlex.join([sys.executable, *sys.argv])


@contextlib.contextmanager
def work_directory(given: Path | None, prefix: str) -> Iterator[Path]:
    """``given`` (created if need be, kept afterwards), or a new temporary directory named
    ``prefix...``, removed with all it holds after the block."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    temporary = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_json(path: Path | str | None, figures: Mapping[str, object]) -> None:
    """The figures, indented, in ``path`` (nothing without one)."""
    if path:
        Path(path).write_text(json.dumps(figures, indent=2) + "\n")


def report_head(benchmark: str, load_note: str = "") -> list[str]:
    """The first lines of a report: its title, the command and the load average (then
    ``load_note``)."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return ["", f"=== mirrorbits {benchmark} benchmark ===", f"command      {command_line()}",
            f"load average {load}{load_note}"]
