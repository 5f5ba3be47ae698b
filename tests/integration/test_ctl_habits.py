"""``mirrorbits-ctl`` as an operator types it, against a real daemon (twistd), redis-server
and ``rsync --daemon``: flags in either order, refused values, exit codes, ``-end-date``,
``never`` and the progress of long commands on a terminal (a real pty) or a pipe."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import date, timedelta
from pathlib import Path

import attrs
import pytest
import redis

from tests.daemon import BIN, DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.integration.test_rsync_scan import RsyncDaemon, rsyncd
from tests.servers import RedisServer, env_without_proxies
from tests.terminal import CTRL_C, Terminal, TerminalRun, run_on_terminal

pytestmark = pytest.mark.integration

__all__ = ["rsyncd"]  # fixture

CTL = str(BIN / "mirrorbits-ctl")
REFRESH = "Refreshing the local repository... "
ALL_HASHES = "Hashes:\n  SHA1: true\n  SHA256: true\n  MD5: true\n"


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``mirrorbits-ctl`` with exactly ``argv`` (stdout and stderr on pipes)."""
    return subprocess.run([CTL, *argv], input=stdin, capture_output=True, text=True,
                          timeout=120, env=env_without_proxies())


def address(daemon: DaemonProcess) -> list[str]:
    host, port = daemon.rpc
    return ["-h", host, "-p", str(port)]


def start_daemon(workdir: Path, repo: Path, redis_server: RedisServer,
                 raw: str = "") -> DaemonProcess:
    process = DaemonProcess(workdir=workdir, values=base_config(repo, redis_server.address),
                            raw=raw, args=["--no-monitor"])
    process.start()
    return process


@pytest.fixture
def daemon(tmp_path: Path, redis_server: RedisServer,
           redis_db: redis.Redis) -> Iterator[DaemonProcess]:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    process = start_daemon(tmp_path / "run", repo, redis_server)
    yield process
    process.stop()


# --- flags in either order --------------------------------------------------------------------

def test_flags_after_the_command_and_its_arguments(daemon: DaemonProcess) -> None:
    host, port = daemon.rpc
    where = ["-h", host, "-p", str(port)]
    # global flags after the command (but -h), command flags after the argument
    listed = run("-h", host, "list", "-p", str(port), "-P", "test-rpc")
    assert (listed.stdout, listed.stderr, listed.returncode) == ("Identifier \tSTATE\tSINCE\n",
                                                                 "", 0)
    added = run("-h", host, "add", "madrid", "-http", "http://127.0.0.31/", "-p", str(port),
                "-P", "test-rpc")
    assert (added.stderr, added.returncode) == ("", 0)
    assert "Mirror 'madrid' added successfully\n" in added.stdout
    # the reference's order still works, and means the same
    for argv in (["-P", "test-rpc", *where, "list", "-disabled"],
                 [*where, "list", "-disabled", "-P", "test-rpc"],
                 ["-P", "wrong", *where, "list", "-P", "test-rpc", "-disabled"]):
        listed = run(*argv)
        assert (listed.stdout, listed.stderr, listed.returncode) == (
            "Identifier \tSTATE\t\tSINCE\nmadrid \t\tdisabled \t(never)\n", "", 0), argv
    assert run(*where, "list", "-enabled", "-P", "test-rpc").stdout == (
        "Identifier \tSTATE\tSINCE\n")
    for argv in (["stats", "mirror", "madrid", "-start-date", "2026-1-1", "-h=false"],
                 ["stats", "-start-date", "2026-1-1", "-h=false", "mirror", "madrid"]):
        stats = daemon.ctl(*argv)
        assert (stats.stdout, stats.stderr, stats.returncode) == (
            "Identifier:\t\tmadrid\nStatus:\t\t\tdisabled\nDownload requests:\t0\n"
            "Bytes transferred:\t0\n", "", 0), argv
    removed = daemon.ctl("remove", "madrid", "-f")
    assert (removed.stdout, removed.stderr, removed.returncode) == (
        "Mirror 'madrid' removed successfully\n", "", 0)
    # -h after the command still asks for help, as in the reference
    helped = run("list", "-h", "somewhere")
    assert (helped.returncode, helped.stderr) == (0, "")
    assert helped.stdout.startswith("Usage: mirrorbits-ctl list [OPTIONS]\n")


def test_bad_values_are_refused_in_one_line(daemon: DaemonProcess) -> None:
    where = address(daemon)
    cases = [
        (["stats", "mirror", "m", "-start-date", "2026-13-01"],
         'invalid value "2026-13-01" for flag -start-date: month must be in 1..12'),
        (["stats", "-start-date", "yesterday", "file", "."],
         'invalid value "yesterday" for flag -start-date: expected a date as YYYY-MM-DD'),
        (["stats", "file", ".", "-end-date", "2026-02-30"],
         'invalid value "2026-02-30" for flag -end-date: day is out of range for month'),
        (["stats", "-start-date", "2026-03-02", "-end-date", "2026-03-01", "file", "."],
         "-start-date 2026-03-02 is after -end-date 2026-03-01"),
        (["list", "-p", "abc"], 'invalid value "abc" for flag -p: parse error'),
        (["list", "-p", "0"], 'invalid value "0" for flag -p: not a port number (1-65535)'),
        (["list", "-frobnicate"], "flag provided but not defined: -frobnicate"),
        (["show", "m", "-frobnicate"], "flag provided but not defined: -frobnicate"),
        (["logs", "m", "-l", "many"], 'invalid value "many" for flag -l: parse error'),
        (["list", "-state=maybe"], 'invalid boolean value "maybe" for -state: parse error'),
    ]
    for argv, message in cases:
        refused = run(*where, "-P", "test-rpc", *argv)
        assert (refused.stdout, refused.stderr, refused.returncode) == ("", message + "\n", 2)


# --- exit codes --------------------------------------------------------------------------------

def test_every_failure_exits_non_zero(daemon: DaemonProcess, tmp_path: Path) -> None:
    assert daemon.ctl("refresh").returncode == 0
    for name, ip in (("m1", "127.0.0.31"), ("m2", "127.0.0.32")):
        assert daemon.ctl("add", "-http", f"http://{ip}/", name).returncode == 0
    failures = [
        (daemon.ctl("show", "lima"), "", "No match for 'lima'\n"),
        (daemon.ctl("enable", "m"), "", "Multiple match:\n  m1\n  m2\n"),
        (daemon.ctl("list", password="wrong"), "", "Password refused\n"),
        (daemon.ctl("list", password=""), "",
         "Please set the server password with the -P option.\n"),
        (daemon.ctl("stats", "file", "(unclosed"), "",
         "invalid pattern '(unclosed': missing ), unterminated subpattern at position 0\n"),
        (daemon.ctl("stats", "file", "*.iso"), "",
         "invalid pattern '*.iso': nothing to repeat at position 0 (a regular expression, not a "
         "glob: '\\.iso$' for the files ending in .iso)\n"),
        (daemon.ctl("scan", "-rsync", "m1"), "Scanning m1... ",
         "\nscan error: no suitable URL for the scan: m1 has no rsync URL\n"),
        # the reference printed both errors and exited 0
        (daemon.ctl("scan", "-all", "-rsync"),
         "Scanning m1... scan error: no suitable URL for the scan: m1 has no rsync URL\n"
         "Scanning m2... scan error: no suitable URL for the scan: m2 has no rsync URL\n",
         "2 of 2 scans failed\n"),
        (daemon.ctl("remove", "m1", stdin="n\n"), "Removing m1, are you sure? [y/N]",
         "Aborted\n"),
    ]
    for result, stdout, stderr in failures:
        assert (result.stdout, result.stderr, result.returncode) == (stdout, stderr, 1), result
    # the reader of a pipe went away: no traceback, the status of a SIGPIPE
    read, write = os.pipe()
    os.close(read)
    host, port = daemon.rpc
    try:
        closed = subprocess.run([CTL, "-h", host, "-p", str(port), "-P", "test-rpc", "list"],
                                stdout=write, stderr=subprocess.PIPE, timeout=60,
                                env=env_without_proxies())
    finally:
        os.close(write)
    assert (closed.stderr, closed.returncode) == (b"", 141)
    daemon.stop()
    gone = run(*address(daemon), "-P", "test-rpc", "list")
    assert (gone.stdout, gone.returncode) == ("", 1)
    assert gone.stderr == (
        f"rpc: cannot connect to the daemon at {host}:{port}: connection refused\n")


EDITOR = """#!{python}
import signal, sys
path = sys.argv[1]
signal.signal(signal.SIGINT, lambda *_: print("GOT-INT", flush=True))  # like vi
print("EDITING", flush=True)
sys.stdin.readline()
text = open(path).read().replace("first mirror", "edited after Ctrl-C")
open(path, "w").write(text)
"""


def test_ctrl_c_at_a_prompt_and_in_the_editor(daemon: DaemonProcess, tmp_path: Path,
                                              redis_db: redis.Redis) -> None:
    assert daemon.ctl("add", "-http", "http://127.0.0.31/", "-comment", "first mirror",
                      "madrid").returncode == 0
    argv = [CTL, *address(daemon), "-P", "test-rpc"]
    typed: list[bytes] = []

    def type_when(shown: bytes, keys: bytes) -> Callable[[Terminal], None]:
        def typing(terminal: Terminal) -> None:
            if shown in terminal.screen and keys not in typed:
                typed.append(keys)
                terminal.type(keys)
        return typing

    # Ctrl-C at a question means "no" (the reactor's handler alone would wait for Enter)
    asked = run_on_terminal([*argv, "remove", "madrid"], timeout=30,
                            on_output=type_when(b"[y/N]", CTRL_C))
    assert (asked.stderr, asked.returncode) == ("Aborted\n", 1)
    assert redis_db.hget("MIRRORS", "1") == "madrid"
    typed.clear()
    password = run_on_terminal([CTL, *address(daemon), "-a", "list"],
                               timeout=30, on_output=type_when(b"Password: ", CTRL_C))
    assert (password.stderr, password.returncode) == ("\nInterrupted\n", 130)
    # Ctrl-C in the editor belongs to the editor
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR.format(python=sys.executable))
    editor.chmod(0o755)
    typed.clear()

    def edit(terminal: Terminal) -> None:
        type_when(b"EDITING", CTRL_C)(terminal)
        type_when(b"GOT-INT", b"saved\n")(terminal)

    edited = run_on_terminal([*argv, "edit", "madrid"], timeout=60, on_output=edit,
                             env={"EDITOR": str(editor)})
    assert (edited.stderr, edited.returncode) == ("", 0), edited.text
    assert edited.final_lines()[-2] == "Mirror 'madrid' edited successfully"
    assert redis_db.hget("MIRROR_1", "comment") == "edited after Ctrl-C"


# --- -end-date ---------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _download(daemon: DaemonProcess, path: str) -> str | None:
    host, port = daemon.http
    request = urllib.request.Request(f"http://{host}:{port}{path}",
                                     headers={"X-Forwarded-For": "100.96.2.10"})
    try:
        urllib.request.build_opener(_NoRedirect()).open(request, timeout=5)
    except urllib.error.HTTPError as err:
        return err.headers.get("Location") if err.code == 302 else None
    return None


def test_end_date_counts_its_whole_day(daemon: DaemonProcess, redis_db: redis.Redis) -> None:
    assert daemon.ctl("refresh").returncode == 0
    put_a_txt_on_a_mirror(daemon, redis_db)
    wait_until(lambda: _download(daemon, "/a.txt") == "http://127.0.0.31/a.txt")
    wait_until(lambda: redis_db.get("STATS_TOTAL") == "1")
    (key,) = [str(k) for k in redis_db.keys("STATS_MIRROR_*")
              if re.fullmatch(r"STATS_MIRROR_\d{4}_\d\d_\d\d", str(k))]
    day = date(*(int(part) for part in key.split("_")[2:]))  # the day it was counted
    before = day - timedelta(days=1)

    def requests(*flags: str) -> str:
        shown = daemon.ctl("stats", "mirror", "madrid", *flags)
        assert (shown.stderr, shown.returncode) == ("", 0)
        match = re.search(r"Download requests:\t(\d+)\n", shown.stdout)
        assert match is not None, shown.stdout
        return match.group(1)

    # the reference counted up to the start of the end day: 0 here
    assert requests("-start-date", before.isoformat(), "-end-date", day.isoformat()) == "1"
    assert requests("-start-date", day.isoformat(), "-end-date", day.isoformat()) == "1"
    assert requests("-start-date", before.isoformat(), "-end-date", before.isoformat()) == "0"
    assert requests("-start-date", f"{day.year}-{day.month}-1") == "1"  # up to today
    assert requests() == "1"  # today
    files = daemon.ctl("stats", "file", "a.txt", "-start-date", before.isoformat(),
                       "-end-date", day.isoformat())
    assert (files.stdout, files.returncode) == (
        "/a.txt:\t\t\t\t1\n\t\t\t\t\nTotal download requests: \t1\n", 0)


# --- progress on a terminal --------------------------------------------------------------------

def bulk_repository(repo: Path, files: int, big_files: int) -> None:
    """``files`` one-byte files in directories of 100, and sparse files of 16 MiB to hash."""
    for index in range(files):
        folder = repo / f"d{index // 100:03d}"
        if index % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index % 100:03d}").write_bytes(b"x")
    (repo / "big").mkdir(parents=True, exist_ok=True)
    for index in range(big_files):
        with open(repo / "big" / f"b{index:03d}", "wb") as handle:
            handle.truncate(16 * 1024 * 1024)


def progress_updates(screen: TerminalRun, prefix: str) -> list[str]:
    """The statuses shown after ``prefix`` by carriage returns."""
    found = re.findall(re.escape("\r" + prefix) + r"([a-z]+: [0-9/]+ files[^\r]*)", screen.text)
    return [status.rstrip(" ") for status in found]  # blanks cover a longer former status


def test_refresh_shows_progress_on_a_terminal_only(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    repo = tmp_path / "repo"
    bulk_repository(repo, 3000, 48)
    daemon = start_daemon(tmp_path / "run", repo, redis_server, raw=ALL_HASHES)
    try:
        argv = [CTL, *address(daemon), "-P", "test-rpc"]
        for command in (["refresh"], ["refresh", "-rehash"]):
            started = time.monotonic()
            shown = run_on_terminal([*argv, *command])
            took = time.monotonic() - started
            assert (shown.stderr, shown.returncode) == ("", 0)
            assert shown.final_lines() == [REFRESH + "done", ""]
            updates = progress_updates(shown, REFRESH)
            assert updates, (took, shown.screen)
            assert all(re.fullmatch(r"(listing: \d+|checksums: \d+/3048|indexing: \d+/3048)"
                                    r" files(, \d+ files/s)?", u) for u in updates), updates
            assert "\n" not in shown.text.replace("\r\n", "")  # one line, rewritten
        assert redis_db.scard("FILES") == 3048
        piped = daemon.ctl("refresh", "-rehash")
        assert (piped.stdout, piped.stderr, piped.returncode) == (REFRESH + "done\n", "", 0)

        typed: list[bytes] = []

        def interrupt(terminal: Terminal) -> None:
            if b"checksums: " in terminal.screen and not typed:
                typed.append(CTRL_C)
                terminal.type(CTRL_C)

        stopped = run_on_terminal([*argv, "refresh", "-rehash"], on_output=interrupt)
        assert (stopped.stderr, stopped.returncode) == ("Interrupted\n", 130)
        # the progress is cleared; the terminal echoed ^C where the cursor was
        assert re.fullmatch(re.escape(REFRESH) + r" *\^C", stopped.final_lines()[0])
    finally:
        daemon.stop()


@attrs.define
class SlowLink:
    """A TCP relay on 127.0.0.1 passing the server's bytes to clients ``chunk`` bytes every
    ``pause`` seconds: a slow network in front of a real server."""

    target: int
    chunk: int = 1024
    pause: float = 0.02
    port: int = 0
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = attrs.Factory(list)
    _threads: list[threading.Thread] = attrs.Factory(list)
    _stop: threading.Event = attrs.Factory(threading.Event)

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            self._sockets += [client, server]
            self._spawn(self._pump, client, server, 65536, 0.0)
            self._spawn(self._pump, server, client, self.chunk, self.pause)

    def _pump(self, source: socket.socket, sink: socket.socket, size: int,
              pause: float) -> None:
        try:
            while not self._stop.is_set():
                data = source.recv(size)
                if not data:
                    break
                sink.sendall(data)
                if pause:
                    time.sleep(pause)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(5)


def test_scan_shows_progress_on_a_terminal_only(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis, rsyncd: RsyncDaemon
) -> None:
    bulk_repository(rsyncd.tree("full") / "bulk", 4000, 0)
    link = SlowLink(rsyncd.port)
    link.start()
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    daemon = start_daemon(tmp_path / "run", repo, redis_server)
    try:
        assert daemon.ctl("refresh").returncode == 0
        url = f"rsync://127.0.0.1:{link.port}/full/"
        assert daemon.ctl("add", "-rsync", url, "-http", "http://127.0.0.31/", "m1",
                          ).returncode == 0
        shown = run_on_terminal([CTL, *address(daemon), "-P", "test-rpc", "scan", "m1"])
        assert (shown.stderr, shown.returncode) == ("", 0)
        lines = shown.final_lines()
        assert re.fullmatch(r"Scanning m1\.\.\. \d+ files indexed, 0 known and 0 removed",
                            lines[0]), lines
        assert lines[1:] == [""]
        updates = progress_updates(shown, "Scanning m1... ")
        assert any(u.startswith("listing: ") for u in updates), shown.screen
        counts = [int(re.findall(r"\d+", u)[0]) for u in updates if u.startswith("listing")]
        assert counts == sorted(counts) and counts[-1] > 0
        piped = daemon.ctl("scan", "m1")
        assert (piped.stderr, piped.returncode) == ("", 0)
        assert re.fullmatch(r"Scanning m1\.\.\. \d+ files indexed, 0 known and 0 removed\n",
                            piped.stdout)
    finally:
        daemon.stop()
        link.stop()
