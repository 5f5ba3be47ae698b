"""``?trace`` on the real daemon and the recorded scenario: every mirror holding the file, with
the distance, score and exclusion reason the JSON answer gives for the same client, and the
client facts used; nothing private."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.daemon import DaemonProcess
from tests.integration.conftest import header_values, request
from tests.integration.test_mirrors_api import records, scenario_db
from tests.scenario import scenario
from tests.servers import RedisServer

CLIENTS = {"lisbon": "100.96.1.10", "seville": "100.96.2.10"}
PATHS = [p for p in scenario()["paths"] if not p.endswith("/")][:6]


def by_name(mirrors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["Name"]: m for m in mirrors}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_trace_agrees_with_the_json_answer(conformance_daemon: DaemonProcess, path: str,
                                           client: str) -> None:
    headers = {"X-Forwarded-For": CLIENTS[client]}
    status, answer_headers, body = request(conformance_daemon, "GET", path + "?trace", headers)
    if status == 404:
        return
    assert status == 200
    assert header_values(answer_headers, "Content-Type") == ["application/json; charset=utf-8"]
    trace = json.loads(body)
    _, _, document = request(conformance_daemon, "GET", path,
                             {**headers, "Accept": "application/json"})
    results = json.loads(document)
    info = results["ClientInfo"]
    assert trace["Client"]["IP"] == results["IP"] == CLIENTS[client]
    for ours, theirs in (("CountryCode", "CountryCode"), ("ASNum", "ASNum"),
                         ("Latitude", "Latitude"), ("City", "City")):
        assert trace["Client"][ours] == info[theirs]
    assert trace["Client"]["Protocol"] == "any"
    candidates = by_name(trace["Candidates"])
    assert len(candidates) == len(trace["Candidates"])
    if results.get("Fallback"):
        assert trace["Fallback"] is True
        return
    ranked = [c for c in trace["Candidates"] if c["Rank"] is not None]
    assert [c["Rank"] for c in ranked] == list(range(1, len(ranked) + 1))
    assert all(c["ExcludeReason"] == "" for c in ranked)
    for mirror in results["MirrorList"]:
        mine = candidates[mirror["Name"]]
        assert mine["Distance"] == mirror["Distance"]
        assert mine["ComputedScore"] == mirror["ComputedScore"]
        assert mine["ScoreFactors"]["MirrorScore"] == mirror["Score"]
    for mirror in results.get("ExcludedList", []):
        mine = candidates[mirror["Name"]]
        assert mine["Rank"] is None
        assert mine["ExcludeReason"] == mirror["ExcludeReason"]


def test_trace_says_nothing_private(conformance_daemon: DaemonProcess,
                                    conformance_redis: RedisServer) -> None:
    _, _, body = request(conformance_daemon, "GET", PATHS[0] + "?trace&pretty",
                         {"X-Forwarded-For": CLIENTS["lisbon"], "X-Forwarded-Proto": "https"})
    assert json.loads(body)["Client"]["Protocol"] == "https"
    db = scenario_db(conformance_redis)
    try:
        stored = records(db)
    finally:
        db.close()
    for fields in stored.values():
        for name in ("adminEmail", "adminName", "comment", "customData", "http", "rsync"):
            if fields.get(name):
                assert fields[name].encode() not in body, name
