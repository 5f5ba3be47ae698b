"""``GET /?mirrors`` on the real daemon and the recorded scenario's Redis: every enabled mirror
with its URLs, place, states and file count as Redis holds them, and nothing private."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis

from tests.daemon import DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.integration.conftest import header_values, request
from tests.servers import RedisServer


def scenario_db(server: RedisServer) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, db=3, decode_responses=True)


def records(db: redis.Redis) -> dict[str, dict[str, str]]:
    """Every mirror's hash by name."""
    return {name: db.hgetall(f"MIRROR_{mid}") for mid, name in db.hgetall("MIRRORS").items()}


def test_every_enabled_mirror_as_redis_has_it(conformance_daemon: DaemonProcess,
                                              conformance_redis: RedisServer) -> None:
    status, headers, body = request(conformance_daemon, "GET", "/?mirrors", {})
    assert status == 200
    assert header_values(headers, "Content-Type") == ["application/json; charset=utf-8"]
    listed = {m["Name"]: m for m in json.loads(body)["Mirrors"]}
    db = scenario_db(conformance_redis)
    try:
        stored = records(db)
        enabled = {name for name, fields in stored.items() if fields.get("enabled") == "1"}
        assert enabled and set(listed) == enabled
        assert len(enabled) < len(stored)  # the scenario has disabled mirrors: left out
        for name, mirror in listed.items():
            fields = stored[name]
            assert mirror["Files"] == db.scard(f"MIRRORFILES_{fields['ID']}")
            assert mirror["CountryCodes"] == fields["countryCodes"].split()
            assert mirror["ContinentCode"] == fields["continentCode"]
            url = fields["http"]
            scheme, sep, rest = url.partition("://")
            schemes = [scheme] if sep else ["http", "https"]  # scheme-less: both
            assert mirror["URLs"] == {
                **{name: f"{name}://{rest if sep else url}" for name in schemes},
                **{name: fields[name] for name in ("rsync", "ftp") if fields.get(name)}}
            assert set(mirror["States"]) == set(schemes)
            for name in schemes:
                state: dict[str, Any] = mirror["States"][name]
                assert state["Up"] == (fields[f"{name}Up"] == "1")
                assert state["Reason"] == fields.get(f"{name}DownReason", "")
    finally:
        db.close()
    for fields in stored.values():  # nothing private
        for secret in (fields.get("adminEmail"), fields.get("adminName"), fields.get("comment"),
                       fields.get("customData")):
            if secret:
                assert secret.encode() not in body, secret


def test_pretty_and_reused(conformance_daemon: DaemonProcess) -> None:
    _, _, compact = request(conformance_daemon, "GET", "/?mirrors", {})
    _, _, pretty = request(conformance_daemon, "GET", "/any/path?mirrors&pretty", {})
    assert json.loads(compact) == json.loads(pretty)
    assert b"\n    " in pretty and b"\n    " not in compact


def test_counts_read_at_most_every_five_seconds(tmp_path: Path, redis_server: RedisServer,
                                                redis_db: redis.Redis) -> None:
    """A loop of ``?mirrors`` costs Redis one read per 5 s: a new count shows after that."""
    repo_file(tmp_path / "repo", "/a.txt", b"hello\n", 1687249800)
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(tmp_path / "repo", redis_server.address),
                           args=["--no-monitor"])
    daemon.start()
    try:
        put_a_txt_on_a_mirror(daemon, redis_db)

        def files() -> int:
            status, _, body = request(daemon, "GET", "/?mirrors", {})
            assert status == 200
            (mirror,) = json.loads(body)["Mirrors"]
            assert mirror["Name"] == "madrid"
            count: int = mirror["Files"]
            return count

        assert files() == 0
        first = time.monotonic()
        redis_db.sadd("MIRRORFILES_1", "/a.txt")
        assert files() == 0  # the same document, reused
        deadline = first + 15
        while files() != 1:
            assert time.monotonic() < deadline
            time.sleep(0.25)
        assert time.monotonic() - first >= 3.0  # not read again at once (5 s, less the request)
    finally:
        daemon.stop()
