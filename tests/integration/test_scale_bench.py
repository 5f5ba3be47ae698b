"""``bench/scale``'s kept data set (``--keep-data``: a 1,000,000-file set takes minutes to
write, seconds to load) and how it names Redis' slow commands, against a real redis-server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scale import run
from tests.servers import RedisServer

pytestmark = pytest.mark.integration


def test_a_kept_data_set_is_reused_only_for_the_same_options(tmp_path: Path) -> None:
    args = run.parse_args(["--files", "10", "--mirrors", "3", "--keep-data"])
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    try:
        client = server.client()
        client.set("FILE_/a", "kept")
        assert not run.kept_data(tmp_path, args)
        run.keep_data(tmp_path, args, client)
        client.close()
    finally:
        server.stop()
    assert run.kept_data(tmp_path, args)
    assert not run.kept_data(tmp_path, run.parse_args(["--files", "11", "--mirrors", "3"]))
    server.start()  # the same directory: Redis loads what was saved
    try:
        client = server.client()
        run.wait_loaded(client)
        assert client.get("FILE_/a") == "kept"
        client.close()
    finally:
        server.stop()
    run.drop_kept_data(tmp_path)
    assert not run.kept_data(tmp_path, args)


def test_slow_scripts_are_named_by_what_they_read() -> None:
    head = ["EVAL", "script", "0", "FILE_", "FILEMIRRORS_", "FILEINFO_", "_", "f", "g"]
    assert run.script_kind([*head, "/a\0" + "0\0"]) == "re-read"
    assert run.script_kind([*head, "/a", "/b", "/c"]) == "read of 1-9 files"
    assert run.script_kind([*head, "/a"]) == "read of 1-9 files"
    assert run.script_kind([*head, *["/x"] * 22, "... (28 more arguments)"]) == (
        "read of 50-59 files")
    assert run.script_kind(["HINCRBY", "STATS_FILE", "/a", "1"]) == "hincrby"
