"""No control command reads or writes a file outside the configured paths.

Audit of the commands (spec §14.2): none takes a file path. ``Reload`` reads the configured
file, ``RefreshRepository`` the configured repository; mirror URLs (``HttpURL``, ``RsyncURL``,
``FtpURL``) are used only over the network, by scheme (``rsync://``, ``ftp://``, HTTP).
Shown here on a real daemon (twistd) watched by Python audit hooks (``tests/audit_hook``):
every text argument of every command gets hostile paths to a secret file planted next to
the repository, and local paths as mirror URLs followed by scans; no file event mentions the
secret, no answer carries its content, and every file written is under the daemon's own
directory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import redis

from tests.daemon import DaemonProcess, base_config, repo_file
from tests.integration.amp_wire import call, error_code
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

HOOK = Path(__file__).resolve().parents[1] / "audit_hook"
MARKER = "hostile-secret"
CONTENT = b"TOP-SECRET-CONTENT-4b1d"


@attrs.frozen
class Watched:
    daemon: DaemonProcess
    secret: Path
    created: Path
    audit: Path


@pytest.fixture
def watched(tmp_path: Path, redis_server: RedisServer,
            redis_db: redis.Redis) -> Iterator[Watched]:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / f"{MARKER}.txt"
    secret.write_bytes(CONTENT)
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    audit = tmp_path / "audit.log"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])),
           "MIRRORBITS_AUDIT_LOG": str(audit), "MIRRORBITS_AUDIT_MARKER": MARKER}
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(repo, redis_server.address),
                           args=["--no-monitor"], env=env)
    daemon.start()
    yield Watched(daemon, secret, outside / f"{MARKER}-created", audit)
    daemon.stop()


def hostile_paths(secret: Path, created: Path) -> list[str]:
    relative = "../" * 12 + str(secret).lstrip("/")
    return [str(secret), relative, "file://" + str(secret), "%2e%2e/" * 12 + secret.name,
            str(secret) + "\x00.txt", str(created), "~/" + MARKER, "\\..\\..\\" + MARKER]


def json_argument(name: str, value: object) -> dict[str, str]:
    return {name: "1", f"{name}.0": json.dumps(value)}


def test_no_command_touches_a_file_outside_the_configured_paths(watched: Watched) -> None:
    rpc, password = watched.daemon.rpc, watched.daemon.values["RPCPassword"]
    answers = []

    def send(command: str, **arguments: str) -> dict[bytes, bytes]:
        answer = call(rpc, command, password=password, **arguments)
        answers.append(answer)
        return answer

    deadline = time.monotonic() + 20
    while error_code(call(rpc, "MatchMirror", password=password, pattern="")):
        assert time.monotonic() < deadline, "database not ready"
        time.sleep(0.1)
    added = send("AddMirror", **json_argument("mirror", {
        "name": "m1", "http_url": "http://127.0.0.1:1/",
        "rsync_url": "rsync://127.0.0.1:1" + str(watched.secret),  # a bare path is refused
        "ftp_url": "ftp://127.0.0.1:1" + str(watched.secret)}))
    assert error_code(added) == "", added
    for hostile in hostile_paths(watched.secret, watched.created):
        send("MatchMirror", pattern=hostile)
        send("StatsFile", pattern=hostile, start="2026-01-01", end="2026-01-02")
        send("StatsFile", pattern=".*", start=hostile, end=hostile)
        send("GetProgress", operation=hostile)
        send("AddMirror", **json_argument("mirror", {
            "name": hostile, "http_url": f"http://127.0.0.1:1/{hostile}",
            "rsync_url": hostile, "ftp_url": hostile, "sponsor_logo_url": hostile}))
        for rsync, ftp in ((hostile, hostile), ("rsync://" + hostile, "ftp://" + hostile)):
            send("UpdateMirror", **json_argument("mirror", {
                "id": 1, "name": "m1", "http_url": "http://127.0.0.1:1/", "rsync_url": rsync,
                "ftp_url": ftp, "custom_data": hostile}))
            for protocol in ("rsync", "ftp", "all", hostile):
                send("ScanMirror", id="1", protocol=protocol, scan_timeout="5")
        send("GetMirrorLogs", id="1", max_results="0")
    send("Reload")
    send("RefreshRepository")
    assert all(CONTENT not in b"".join(answer.values()) for answer in answers)
    assert not watched.created.exists()
    events = watched.audit.read_text("utf-8").splitlines() if watched.audit.exists() else []
    assert [line for line in events if MARKER in line] == []
    workdir = str(watched.daemon.workdir)
    written = [line for line in events if line.startswith("open ")]
    assert written, "the audit hook saw no file written (not loaded?)"
    outside = [line for line in written if workdir not in line and "/dev/" not in line]
    assert outside == []
    assert "Traceback" not in watched.daemon.log()
