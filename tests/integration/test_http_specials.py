"""The special HTTP cases of the recording, answered by the real daemon as the reference did.

Covers ``http-specials/*.json`` (router 301s, errors, path forms, If-Modified-Since, the
protocol options, output selection), ``checksums.json`` and the download-log lines of
``downloads-log.json``, on the shared conformance daemon (see conftest). Where we differ
on purpose, the case says why (docs/differences.md).
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from tests.daemon import DaemonProcess
from tests.integration.conftest import header_values, request
from tests.integration.http_expect import (
    LOG_LINE,
    Request,
    assert_headers,
    assert_same_document_any_order,
    body_text,
    log_lines_of,
    recorded_headers,
    recorded_outcome,
    redirect_outcome,
    strip_log_prefix,
)
from tests.scenario import CONFORMANCE

# Deliberate difference (§20 item 4, docs/differences.md): an IPv6 address in brackets is
# located and shown like the bare address. The reference could not locate it and shuffled
# the mirrors.
LOCATED_LIKE = {"ipv6-bracketed-json": "ipv6-json"}
# Deliberate difference (docs/differences.md "HTTP"): an X-Forwarded-For that is not an IP
# address is ignored; the peer (the test client on loopback) is the client, and it is not
# located either. The reference showed the header's text as the client's IP.
PEER = "127.0.0.1"
NOT_AN_IP = {"x-forwarded-for-not-an-ip-json": "capetown"}
# Reference bug fixed (§20 item 13): the ASN-0 "same network" bonus; only mexico changes.
ASN_ZERO_CLIENTS = {"mexico"}
DRAWS = 24


def load(name: str) -> Any:
    return json.loads((CONFORMANCE / name).read_text())


def special_cases() -> list[dict[str, Any]]:
    cases = []
    for path in sorted((CONFORMANCE / "http-specials").glob("*.json")):
        cases.extend(json.loads(path.read_text()))
    return cases


def expected_body(case: dict[str, Any]) -> str:
    """The recorded body, with the peer's address where the reference showed a bad header."""
    body: str = case["body"]
    if case["name"] in NOT_AN_IP:
        body = body.replace(f'"IP":"{NOT_AN_IP[case["name"]]}"', f'"IP":"{PEER}"', 1)
    return body


SPECIALS = special_cases()
BY_NAME = {case["name"]: case for case in SPECIALS}


def ask(daemon: DaemonProcess, case: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    return request(daemon, case["method"], case["path"], case["req_headers"])


@pytest.mark.parametrize("case", SPECIALS, ids=lambda c: c["name"])
def test_special_case(conformance_daemon: DaemonProcess, case: dict[str, Any]) -> None:
    status, headers, body = ask(conformance_daemon, case)
    assert status == case["status"]
    if "redirect_outcomes_HEAD" in case:  # Location and Link may be a draw
        recorded = [recorded_outcome(entry[0])
                    for entry in case["redirect_outcomes_HEAD"]["outcomes"]]
        assert redirect_outcome(status, headers) in recorded
        assert_headers(case, headers, skip=("Location", "Link"))
    else:
        assert_headers(case, headers)
    length = recorded_headers(case, "Content-Length")
    framed = length or recorded_headers(case, "Transfer-Encoding")
    if case["method"] != "HEAD" and (length or not framed):  # a 304 has no length
        assert header_values(headers, "Content-Length") == length
    text = body_text(case, headers, body)
    if case["name"] in LOCATED_LIKE:
        located = BY_NAME[LOCATED_LIKE[case["name"]]]
        assert text == located["body"]
    elif "json_mirrorlist_orders" in case:
        orders = [outcome[0] for outcome in case["json_mirrorlist_orders"]["outcomes"]]
        assert_same_document_any_order(text, expected_body(case), orders)
    elif "not recorded" in case["body"]:  # an HTML page; its content is tested elsewhere
        assert text.startswith("<!DOCTYPE html>")
    elif "redirect_outcomes_HEAD" not in case:
        assert text == case["body"]
    else:
        assert text == ""


@pytest.mark.parametrize(
    "case", [c for c in SPECIALS if "redirect_outcomes_HEAD" in c], ids=lambda c: c["name"])
def test_special_redirect_draws(conformance_daemon: DaemonProcess, case: dict[str, Any]) -> None:
    """Repeated draws give only recorded outcomes, and every outcome of a 2-way draw shows."""
    recorded = [recorded_outcome(entry[0]) for entry in case["redirect_outcomes_HEAD"]["outcomes"]]
    seen = []
    for _ in range(DRAWS):
        status, headers, _ = ask(conformance_daemon, case)
        outcome = redirect_outcome(status, headers)
        assert outcome in recorded
        seen.append(outcome)
    if len(recorded) <= 2:
        assert all(outcome in seen for outcome in recorded)


@pytest.mark.parametrize(
    "case", [c for c in SPECIALS if "json_mirrorlist_orders" in c and c["name"] not in
             LOCATED_LIKE], ids=lambda c: c["name"])
def test_special_json_draws(conformance_daemon: DaemonProcess, case: dict[str, Any]) -> None:
    """Clients without a location get shuffled mirrors: only recorded orders, and several."""
    orders = [outcome[0] for outcome in case["json_mirrorlist_orders"]["outcomes"]]
    seen = set()
    for _ in range(DRAWS):
        status, _, body = ask(conformance_daemon, case)
        assert status == 200
        seen.add(tuple(assert_same_document_any_order(body.decode(), expected_body(case),
                                                      orders)))
    assert len(seen) >= min(2, len(orders))


def test_not_modified_then_next_request_on_one_connection(
        conformance_daemon: DaemonProcess) -> None:
    """A 304 without Content-Length still leaves the connection usable."""
    host, port = conformance_daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        case = BY_NAME["equal-304"]
        connection.request("GET", case["path"], headers=case["req_headers"])
        first = connection.getresponse()
        assert (first.status, first.read(), first.getheader("Content-Length")) == (304, b"", None)
        connection.request("GET", "/ANNOUNCE.md?md5")
        second = connection.getresponse()
        assert second.status == 200
        assert second.read() == b"1ec796074d8e527d9d91266f370bd7b8  ANNOUNCE.md"
    finally:
        connection.close()


def test_head_answers_with_a_body_log_no_warning(conformance_daemon: DaemonProcess) -> None:
    for path in ("/nope.txt", "/pool/../ANNOUNCE.md", "/leak.txt"):
        status, headers, body = request(conformance_daemon, "HEAD", path, {})
        assert status in (301, 403, 404) and body == b""
        assert int(header_values(headers, "Content-Length")[0]) > 0
    assert "returning a message body" not in conformance_daemon.log()


# --- checksums ------------------------------------------------------------------------------

CHECKSUMS = load("checksums.json")


@pytest.mark.parametrize("case", CHECKSUMS, ids=lambda c: f"{c['path']}?{c['query']}")
def test_checksum(conformance_daemon: DaemonProcess, case: dict[str, Any]) -> None:
    status, headers, body = request(
        conformance_daemon, "GET", f"{case['path']}?{case['query']}", {})
    assert status == case["status"]
    assert_headers(case, headers)
    assert header_values(headers, "Content-Length") == recorded_headers(case, "Content-Length")
    assert body.decode("utf-8") == case["body"]


# --- download log ---------------------------------------------------------------------------

DOWNLOADS = load("downloads-log.json")["per_request"]
MATRIX = {(c["client"], c["path"]): c
          for path in sorted((CONFORMANCE / "matrix").glob("*.json"))
          for c in json.loads(path.read_text())}
UNLOCATED_ANNOUNCE = {order[0] for order, _ in
                      BY_NAME["no-x-forwarded-for-json"]["json_mirrorlist_orders"]["outcomes"]}


def download_request(entry: dict[str, Any]) -> Request:
    if "client" in entry:
        assert entry["request"] == "GET json"
        return "GET", entry["path"], {"X-Forwarded-For": entry["ip"],
                                      "Accept": "application/json"}
    return entry["method"], entry["path"], entry["req_headers"]


def download_id(entry: dict[str, Any]) -> str:
    return f"{entry['client']}:{entry['path']}" if "client" in entry else entry["label"]


def drawn_first_mirrors(entry: dict[str, Any]) -> set[str] | None:
    """The mirrors the line may name when the first mirror is a draw; None if fixed."""
    if "client" in entry:
        case = MATRIX[(entry["client"], entry["path"])]
        if case["deterministic"]:
            return None
        return {order[0] for order, _ in case["json_mirrorlist_orders"]["outcomes"]}
    if entry["label"] == "no X-Forwarded-For":  # 127.0.0.1 is in no database: shuffled
        return UNLOCATED_ANNOUNCE
    return None


@pytest.fixture(scope="module")
def download_lines(conformance_daemon: DaemonProcess) -> dict[str, Any]:
    answers = log_lines_of(conformance_daemon, [download_request(e) for e in DOWNLOADS])
    return {download_id(entry): answer for entry, answer in zip(DOWNLOADS, answers, strict=True)}


@pytest.mark.parametrize("entry", DOWNLOADS, ids=download_id)
def test_download_log_line(download_lines: dict[str, Any], entry: dict[str, Any]) -> None:
    status, _, _, lines = download_lines[download_id(entry)]
    assert status == entry["status"]
    expected = [strip_log_prefix(line) for line in entry["lines"]]
    drawn = drawn_first_mirrors(entry)
    if entry.get("client") in ASN_ZERO_CLIENTS:
        drawn = set()  # our first mirror differs on purpose: check the shape only
    if drawn is None:
        assert lines == expected
        return
    assert len(lines) == len(expected) == 1
    ours, theirs = LOG_LINE.match(lines[0]), LOG_LINE.match(expected[0])
    assert ours is not None and theirs is not None, lines
    assert ours.group("head") == theirs.group("head")
    assert ours.group("fallback") == theirs.group("fallback")
    if drawn:
        assert ours.group("mirror") in drawn
