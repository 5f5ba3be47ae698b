"""The real daemon, started through ``twistd`` as a subprocess, and the real CLI."""

from __future__ import annotations

import functools
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from mirrorbits.store import keys
from tests.servers import env_without_proxies, free_port

BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).parent / "fixtures"
START_TIMEOUT = 60.0  # seconds for a daemon to listen and start its services


def base_config(repository: Path, redis_address: str, **extra: str) -> dict[str, str]:
    """A configuration for tests: private ports, the test GeoIP databases."""
    values = {
        "Repository": str(repository),
        "ListenAddress": f"127.0.0.1:{free_port()}",
        "RPCListenAddress": f"127.0.0.1:{free_port()}",
        "RPCPassword": "test-rpc",
        "RedisAddress": redis_address,
        "GeoipDatabasePath": str(FIXTURES / "geo") + "/",
        "RepositoryScanInterval": "0",
        # Many tests add mirrors at addresses where nothing listens: no liveness probes
        # unless the test asks for them (tests/integration/test_liveness.py).
        "LivenessInterval": "0",
        # Nor file verification (tests/integration/test_verify_files.py): many tests record
        # files their mirrors do not serve.
        "VerifyInterval": "0",
    }
    values.update(extra)
    return values


def render_config(values: dict[str, str], raw: str = "") -> str:
    lines = [f"{key}: {value}" for key, value in values.items()]
    return "\n".join(lines) + "\n" + raw


#: How Twisted logs an error nobody handled.
UNHANDLED = ("Unhandled error in Deferred", "Unhandled Error")


@attrs.define
class DaemonProcess:
    """``twistd -n mirrorbits --config FILE`` in a work directory; ``embedded``: without a
    file, ``--repository``, ``--listen``, ``--control`` and ``--redis-address`` taken from
    ``values`` (its data directory ``./mirrorbits-data`` in the work directory)."""

    workdir: Path
    values: dict[str, str]
    raw: str = ""
    args: list[str] = attrs.field(factory=list)
    config_text: str | None = None
    env: dict[str, str] = attrs.field(factory=dict)  # added to the environment
    new_session: bool = False  # its own process group (shared with its successors)
    embedded: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "mirrorbits.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "twistd.log"

    @property
    def http(self) -> tuple[str, int]:
        host, _, port = self.values["ListenAddress"].rpartition(":")
        return host, int(port)

    @property
    def rpc(self) -> tuple[str, int]:
        host, _, port = self.values["RPCListenAddress"].rpartition(":")
        return host, int(port)

    def write_config(self) -> None:
        """Write ``config_text`` verbatim when given, else ``values`` plus ``raw``; without
        a ``Workers`` setting, ``Workers: 1`` is added (one process, as the tests expect; the
        worker processes have their own tests)."""
        text = self.config_text if self.config_text is not None else render_config(
            self.values, self.raw)
        if not re.search(r"(?m)^Workers:", text):
            text = text.rstrip("\n") + "\nWorkers: 1\n"
        self.config_path.write_text(text)

    def start(self, wait_http: bool = True) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.embedded:
            configuration = ["--repository", self.values["Repository"],
                             "--listen", self.values["ListenAddress"],
                             "--control", self.values["RPCListenAddress"],
                             "--redis-address", self.values["RedisAddress"]]
        else:
            self.write_config()
            configuration = ["--config", str(self.config_path)]
        env = env_without_proxies()
        env["TZ"] = "UTC"
        env.update(self.env)
        self.process = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile=", "--logfile", str(self.log_path),
             "mirrorbits", *configuration, *self.args],
            cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=self.new_session,
        )
        # Up to a minute, for a machine loaded by a parallel test run (a start takes about a
        # second alone); a daemon that exits stops the wait at once.
        deadline = time.monotonic() + START_TIMEOUT
        addresses = [self.values["RPCListenAddress"]]
        if wait_http:
            addresses.append(self.values["ListenAddress"])
        try:
            for address in addresses:
                self._wait_until(functools.partial(accepts, address), deadline)
            # The sockets accept before the reactor runs: wait until the services started
            # (the signal handlers are installed right after), or a signal sent at once kills
            # the process with the default action.
            self._wait_until(lambda: "Control starting on" in self.log(), deadline)
        except TimeoutError:
            process = self.process
            output = process.stdout.read().decode(errors="replace") if (
                process.poll() is not None and process.stdout is not None) else ""
            code = self.stop()
            raise AssertionError(f"daemon did not start (exit {code}):\n{output}"
                                 f"{self.log()}") from None

    def _wait_until(self, started: Callable[[], bool], deadline: float) -> None:
        assert self.process is not None
        while not started():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise TimeoutError
            time.sleep(0.02)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code = self.process.returncode
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        self.assert_no_unhandled_error()
        return code

    def assert_no_unhandled_error(self) -> None:
        """Twisted's lines for an error nobody handled (a Deferred garbage-collected with a
        failure, an exception in a timed call): a lost error, whatever the test checks."""
        lines = self.log().splitlines()
        for index, line in enumerate(lines):
            if any(mark in line for mark in UNHANDLED):
                excerpt = "\n".join(lines[index:index + 30])
                raise AssertionError(f"unhandled error in the daemon's log:\n{excerpt}")

    def ctl(self, *args: str, password: str | None = None,
            stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``mirrorbits-ctl`` against this daemon."""
        address = self.values["RPCListenAddress"]
        if address.startswith("unix:"):
            command = [str(BIN / "mirrorbits-ctl"), "-h", address]
        else:
            host, port = self.rpc
            command = [str(BIN / "mirrorbits-ctl"), "-h", host, "-p", str(port)]
        pw = self.values.get("RPCPassword", "") if password is None else password
        if pw:
            command += ["-P", pw]
        full_env = env_without_proxies()
        if env:
            full_env.update(env)
        return subprocess.run(command + list(args), input=stdin, capture_output=True, text=True,
                              timeout=60, env=full_env)


def wait_for_address(address: str, timeout: float) -> None:
    """Return once ``host:port`` or ``unix:/path`` accepts connections."""
    deadline = time.monotonic() + timeout
    while not accepts(address):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {address}")
        time.sleep(0.02)


def accepts(address: str) -> bool:
    """Whether ``host:port`` or ``unix:/path`` accepts a connection now."""
    if address.startswith("unix:"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(address[len("unix:"):])
            except OSError:
                return False
            return True
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def run_twistd(*args: str, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run twistd to completion (for start-up errors and --help)."""
    full_env = env_without_proxies()
    if env:
        full_env.update(env)
    return subprocess.run([str(BIN / "twistd"), *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=full_env)


def repo_file(root: Path, relative: str, content: bytes, mtime: int) -> Path:
    path = root / relative.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def record_mirror_files(db: Any, mirror_id: int, files: dict[str, int], mod_time: str) -> None:
    """Record ``files`` (path -> size) on mirror ``mirror_id`` as its scan would, with the Go
    time text ``mod_time``, mark the mirror up over HTTP, and tell the daemons (pub/sub);
    ``db`` is a redis-py client."""
    for path, size in files.items():
        db.sadd(f"FILEMIRRORS_{path}", mirror_id)
        db.hset(f"FILEINFO_{mirror_id}_{path}", mapping={"size": str(size), "modTime": mod_time})
    db.hset(f"MIRROR_{mirror_id}",
            mapping={"httpUp": "1", "lastSuccessfulSyncPrecision": "1000000000"})
    db.publish("_mirrorbits_mirror_update", str(mirror_id))  # as a node changing it does
    for path in files:
        db.publish("_mirrorbits_mirror_file_update", f"{mirror_id} {path}")


def put_a_txt_on_a_mirror(daemon: DaemonProcess, db: Any) -> None:
    """Add mirror ``madrid`` (http://127.0.0.31/) holding ``/a.txt`` as a scan would record it
    (6 bytes, 2023-06-20 08:30:00 UTC), up, and enable it; ``db`` is a redis-py client."""
    assert daemon.ctl("add", "-http", "http://127.0.0.31/", "madrid").returncode == 0
    record_mirror_files(db, 1, {"/a.txt": 6}, "2023-06-20 08:30:00 +0000 UTC")
    assert daemon.ctl("enable", "madrid").returncode == 0


MOD_TIME = "2023-06-20 08:30:00 +0000 UTC"
#: An rsync URL nobody answers: a mirror's scans fail, so they change none of its records.
UNANSWERED_RSYNC = "rsync://127.0.0.1:9/pub/"


def add_mirrors_holding(daemon: DaemonProcess, db: Any, mirrors: Sequence[tuple[str, str]],
                        files: dict[str, int], rsync: str | None = None) -> None:
    """Add each ``(name, http_url)`` with ``mirrorbits-ctl add`` (IDs 1, 2, ... in order), with
    ``rsync`` as its rsync URL if given; record it holding ``files`` (path -> size, modified
    :data:`MOD_TIME`) as its scan would, in ``MIRRORFILES`` and ``HANDLEDFILES`` too; then
    enable each. ``db`` is a redis-py client."""
    for mirror_id, (name, url) in enumerate(mirrors, 1):
        rsync_args = ("-rsync", rsync) if rsync else ()
        assert daemon.ctl("add", "-http", url, *rsync_args, name).returncode == 0
        record_mirror_files(db, mirror_id, files, MOD_TIME)
        db.sadd(keys.handled_files(mirror_id), *files)
        db.sadd(keys.mirror_files(mirror_id), *files)
    for name, _ in mirrors:
        assert daemon.ctl("enable", name).returncode == 0


def redirect(daemon: DaemonProcess, path: str) -> tuple[int, str]:
    """One ``GET path`` of the daemon: its status and ``Location``."""
    host, port = daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def wait_until_not_a_candidate(daemon: DaemonProcess, path: str, mirror: str,
                               timeout: float = 10.0) -> None:
    """Until the daemon's JSON answer for ``path`` names ``mirror`` neither as a choice nor as
    excluded: it read the message that the mirror no longer holds the file (published before
    the line that says so is logged, read a moment later; longer under load)."""
    host, port = daemon.http
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            connection.request("GET", path, headers={"Accept": "application/json"})
            doc = json.loads(connection.getresponse().read())
        finally:
            connection.close()
        names = {m["Name"] for m in doc.get("MirrorList", []) + doc.get("ExcludedList", [])}
        if mirror not in names:
            return
        assert time.monotonic() < deadline, f"{path} still on {mirror}: {doc}"
        time.sleep(0.05)


def last_redirect_to(daemon: DaemonProcess, path: str, url: str, since: float, quiet: float,
                     rounds: int) -> float:
    """Ask for ``path`` every 10 ms (each answer a 302) until none went to ``url`` for
    ``quiet`` seconds, at most ``rounds`` times; when the last one to ``url`` went (``since``
    if none did)."""
    last = since
    for _ in range(rounds):
        status, location = redirect(daemon, path)
        assert status == 302
        if location.startswith(url):
            last = time.monotonic()
        elif time.monotonic() - last > quiet:
            break
        time.sleep(0.01)
    return last
