"""``mirrorbits-ctl`` while the daemon's Redis is a replica (docs/operations.md): a real
daemon, its real redis-server made a replica of a dead address. The commands that only read
answer from the replica as from the master; those that write are refused in one line,
exit code 1, nothing written; once a master answers again, they work."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from mirrorbits.store import keys
from tests.daemon import DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.integration.test_control import write_editor
from tests.integration.test_daemon_redis import wait_until
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.integration

REPLICA = "is a replica: read from"
REFUSED = ("Redis is a read-only replica (no master answers): nothing was changed; "
           "run the command again once a master answers")
READS = (("list",), ("list", "-http", "-location"), ("show", "madrid"), ("logs", "madrid"),
         ("stats", "mirror", "madrid"), ("stats", "file", "a"), ("export", "mirmon"),
         ("version",))
# Those that ask the operator before writing: refused before they ask (nothing on stdout).
ASKING = (("remove", "madrid"), ("geoupdate", "madrid"))
# The command -> (its stdout, its stderr): the refusal in one line.
WRITES = {
    ("disable", "madrid"): ("", f"Couldn't disable mirror 'madrid': {REFUSED}\n"),
    ("enable", "madrid"): ("", f"Couldn't enable mirror 'madrid': {REFUSED}\n"),
    ("add", "-http", "http://127.0.0.32/", "lisbon"): ("", REFUSED + "\n"),
    ("remove", "-f", "madrid"): ("", REFUSED + "\n"),
    ("scan", "madrid"): ("Scanning madrid... ", f"\nscan error: {REFUSED}\n"),
    ("scan", "-all"): ("Scanning madrid... ", f"\nscan error: {REFUSED}\n"),  # said once
    ("refresh",): ("Refreshing the local repository... \n", REFUSED + "\n"),
}


def _answer(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def _snapshot(db: Any) -> dict[str, object]:
    """What the writes would change: the mirror list, the record, its log and files (``db``:
    a redis-py client)."""
    return {
        "mirrors": db.hgetall(keys.MIRRORS),
        "record": db.hgetall(keys.mirror(1)),
        "logs": db.lrange(keys.mirror_logs(1), 0, -1),
        "files": db.smembers(keys.mirror_files(1)),
        "last": db.get(keys.LAST_MID),
    }


def test_ctl_reads_from_a_replica_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    """Before, every command failed with "database not ready" during the whole outage."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    db = server.client()
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    called = tmp_path / "editor-called"
    editor = write_editor(tmp_path, f"open({str(called)!r}, 'a').write(path + '\\n')\n"
                                    "text = open(path).read().replace('Score: 0', 'Score: 7')\n"
                                    "open(path, 'w').write(text)")
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, server.address, ScanInterval="1000"))
    try:
        daemon.start()
        daemon.wait_log("Indexed 1 files", timeout=30)
        put_a_txt_on_a_mirror(daemon, db)
        assert daemon.ctl("add", "-http", "http://127.0.0.33/", "porto").returncode == 0
        on_master = {args: _answer(daemon.ctl(*args)) for args in READS}

        db.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        daemon.wait_log(REPLICA, timeout=20)
        before = _snapshot(db)
        on_replica = {args: _answer(daemon.ctl(*args)) for args in READS}
        refused = {args: _answer(daemon.ctl(*args)) for args in WRITES}
        edited = _answer(daemon.ctl("edit", "madrid", env={"EDITOR": editor}))
        editor_opened = called.exists()
        # the commands that ask first: refused before the question, which stdin would answer
        asked = {args: _answer(daemon.ctl(*args, stdin="y\n")) for args in ASKING}
        after = _snapshot(db)

        masters = daemon.log().count("Connected to redis master")
        db.execute_command("REPLICAOF", "NO", "ONE")
        wait_until(lambda: daemon.log().count("Connected to redis master") > masters, 15,
                   "back on a master", daemon)
        again = _answer(daemon.ctl("disable", "madrid"))
        disabled = db.hget(keys.mirror(1), "enabled")
        edited_again = _answer(daemon.ctl("edit", "madrid", env={"EDITOR": editor}))
        log = daemon.log()
    finally:
        daemon.stop()
        server.stop()
        db.close()
    assert all(code == 0 for code, _, _ in on_master.values()), on_master
    assert on_replica == on_master, (on_replica, log)
    for args, expected in WRITES.items():
        assert refused[args] == (1, *expected), (args, refused[args], log)
    # before the editor opens (before 2026-12-05: when saving, the edit lost)
    assert edited == (1, "", REFUSED + "\n"), (edited, log)
    assert not editor_opened
    assert asked == dict.fromkeys(ASKING, (1, "", REFUSED + "\n")), (asked, log)
    assert after == before  # nothing written, not even an event in the mirror's log
    assert again == (0, "Mirror 'madrid' disabled successfully\n", ""), again
    assert disabled == "0"
    assert edited_again[0] == 0 and "Score: 7" in edited_again[1], edited_again
    assert called.read_text().count("\n") == 1  # the editor opens on a master
    assert "Traceback" not in log
