"""``docs/getting-started.md``, run as written: every ``sh`` block, in order, in one shell.

A person types the blocks into one terminal; here one ``bash`` reads them the same way (each
block sourced with its standard input from ``/dev/null``), so ``cd`` and ``export`` carry over
from block to block. It starts in the checkout (the document's first step), with ``HOME`` a
temporary directory, so that ``~/mirrorbits-start`` is one too. The document's addresses are
fixed (127.0.0.1:8080, :3390 and :6380, 127.0.0.2 and 127.0.0.3 on :8000, :8730 and :2121):
the shell runs in a network namespace of its own (``unshare --net``), where they are free
whatever else runs on the machine, and which nothing outside can reach.

What the document says to the test, and to nobody else:

* A ``text`` block after an ``sh`` block (before the next ``sh`` block) is what it prints:
  each of its lines must be found, in order, among the output's lines; runs of white space
  compare equal and ``…`` matches anything.
* ``<!-- test: retry for N s -->`` on the line before a block: run it again, every 0.3 s, until
  it succeeds and prints what it should, for at most N seconds (a health check, the counters).
* ``<!-- test: not run here; ... -->``: the install step, ``.ci/setup``, which ``.ci/run`` runs
  before the tests (its checks: ``tests/unit/test_shipped_config.py`` for the files it installs
  from, and every test of this suite for what it installs).

Every other block runs; a failing command (the shell's ``ERR`` trap), a missing line or a
traceback in the daemon's log fails the test with the block and what it printed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
DOCUMENT = ROOT / "docs" / "getting-started.md"
WALKTHROUGH = "mirrorbits-start"  # under HOME
# Every address the document listens on, for a run without a namespace of its own.
ADDRESSES = [("127.0.0.1", 8080), ("127.0.0.1", 3390), ("127.0.0.1", 6380),
             ("127.0.0.2", 8000), ("127.0.0.2", 8730), ("127.0.0.3", 8000), ("0.0.0.0", 2121)]
BLOCK_TIMEOUT = 60.0  # seconds for one run of one block
_MARKER = re.compile(r"<!--\s*test:\s*(.*?)\s*-->")
_RETRY = re.compile(r"retry for (\d+) s")


@attrs.frozen
class Block:
    """One ``sh`` block of the document, what it must print, and how the test runs it."""

    line: int  # of its opening fence, 1-based
    script: str
    expected: tuple[str, ...] = ()
    retry: float = 0.0  # seconds; 0: once
    run: bool = True


def read_blocks(text: str) -> list[Block]:
    """The document's ``sh`` blocks with their expected output and test markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    marker = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("```"):
            found = _MARKER.search(line)
            if found:
                marker = found.group(1)
            elif line.strip():
                marker = ""
            index += 1
            continue
        kind = line[3:].strip()
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        body = lines[index + 1:end]
        if kind == "sh":
            retry = _RETRY.search(marker)
            blocks.append(Block(index + 1, "\n".join(body) + "\n",
                                retry=float(retry.group(1)) if retry else 0.0,
                                run=not marker.startswith("not run here")))
        elif kind == "text" and blocks and not blocks[-1].expected:
            blocks[-1] = attrs.evolve(blocks[-1], expected=tuple(x for x in body if x.strip()))
        marker = ""
        index = end + 1
    return blocks


def _normal(text: str) -> str:
    return " ".join(text.split())


def missing_lines(expected: tuple[str, ...], output: str) -> list[str]:
    """The expected lines not found, in order, among the output's lines."""
    got = [_normal(line) for line in output.splitlines()]
    position = 0
    for number, wanted in enumerate(expected):
        pattern = re.compile(".*".join(re.escape(part) for part in _normal(wanted).split("…")))
        while position < len(got) and not pattern.fullmatch(got[position]):
            position += 1
        if position == len(got):
            return list(expected[number:])
        position += 1
    return []


class Terminal:
    """One ``bash`` fed block after block, as a person would type them."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self._scratch = scratch
        self._count = 0
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, errors="replace", start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        # A failing command is reported and the shell goes on, as in a terminal.
        self.run("trap 'echo \"__FAILED__ ($?): $BASH_COMMAND\"' ERR\nset -o pipefail\n")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def run(self, script: str, timeout: float = BLOCK_TIMEOUT) -> tuple[str, bool]:
        """Source ``script`` in the shell; its output, and whether a command failed."""
        self._count += 1
        path = self._scratch / f"block-{self._count}.sh"
        path.write_text(script)
        done = f"__done_{self._count}__"
        assert self.process.stdin is not None
        self.process.stdin.write(f"source {path} </dev/null\necho {done}\n")
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no end after {timeout} s:\n{''.join(output)}") from None
            if line is None:
                raise AssertionError(f"the shell ended:\n{''.join(output)}")
            if line.strip() == done:
                break
            output.append(line)
        text = "".join(output)
        return text, "__FAILED__" in text

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def own_network() -> list[str] | None:
    """The command line of a shell in a network namespace of its own, or None if refused."""
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)
    if unshare is None or ip is None:
        return None
    probe = subprocess.run([unshare, "--net", "--", ip, "link", "set", "lo", "up"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        return None
    return [unshare, "--net", "--", "bash", "--norc", "--noprofile", "-c",
            f"{ip} link set lo up && exec bash --norc --noprofile"]


def all_free() -> bool:
    for host, port in ADDRESSES:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def stop_what_is_left(workdir: Path) -> None:
    """Stop every process the walkthrough left (its pid files): SIGTERM, SIGKILL after 20 s."""
    pids = []
    for pidfile in workdir.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
    deadline = time.monotonic() + 20
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if not (ROOT / ".venv" / "bin" / "twistd").exists():
        pytest.skip("no .venv in the checkout (run .ci/setup)")
    for tool in ("redis-server", "rsync", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run .ci/setup)")
    argv = own_network()
    if argv is None:
        if not all_free():
            pytest.skip("no network namespace of its own, and the document's ports are taken")
        argv = ["bash", "--norc", "--noprofile"]
    home = tmp_path / "home"
    home.mkdir()
    scratch = tmp_path / "blocks"
    scratch.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:"
           "/sbin", "LANG": "C.UTF-8", "TERM": "dumb", "TZ": "UTC"}
    shell = Terminal(argv, ROOT, env, scratch)
    try:
        yield shell
    finally:
        stop_what_is_left(home / WALKTHROUGH)
        shell.close()


def test_the_document_reads_as_the_test_runs_it() -> None:
    blocks = read_blocks(DOCUMENT.read_text(encoding="utf-8"))
    skipped = [block.script for block in blocks if not block.run]
    assert skipped == [".ci/setup\n"]
    assert "bash .ci/setup" in (ROOT / ".ci" / "run").read_text()
    assert len(blocks) > 20
    assert sum(1 for block in blocks if block.expected) > 12
    assert missing_lines(("a … c", "e"), "a b c\nd\n e ") == []
    assert missing_lines(("e", "a"), "a\ne\n") == ["a"]


def test_getting_started_as_written(terminal: Terminal, tmp_path: Path) -> None:
    started = time.monotonic()
    ran = 0
    for block in read_blocks(DOCUMENT.read_text(encoding="utf-8")):
        if not block.run:
            continue
        deadline = time.monotonic() + block.retry
        while True:
            output, failed = terminal.run(block.script)
            missing = missing_lines(block.expected, output)
            if not failed and not missing:
                break
            if time.monotonic() >= deadline:
                log = tmp_path / "home" / WALKTHROUGH / "mirrorbits.log"
                raise AssertionError(
                    f"docs/getting-started.md line {block.line}:\n{block.script}\n"
                    f"printed:\n{output}\nmissing: {missing}\n"
                    f"daemon log:\n{log.read_text() if log.exists() else '(none)'}")
            time.sleep(0.3)
        assert "Traceback" not in output, output
        ran += 1
    workdir = tmp_path / "home" / WALKTHROUGH
    deadline = time.monotonic() + 15  # the last section stopped everything: each removes its
    while list(workdir.glob("*.pid")) and time.monotonic() < deadline:  # pid file as it exits
        time.sleep(0.1)
    assert not list(workdir.glob("*.pid"))
    log = (workdir / "mirrorbits.log").read_text()
    assert "Traceback" not in log and "Unhandled" not in log, log
    assert ran > 20
    assert time.monotonic() - started < 60
