"""The real daemon's ``?mirrorlist`` pages show what the reference's pages showed.

The recorded pages (tests/fixtures/conformance/mirrorlist, README §3.2) are data: the client and
file sentences, the ranked rows with their selection percentages, the excluded rows with their
reasons. Our HTML is read back with html.parser (tests/mirrorlist_html.py) and compared.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mirrorbits import version_string
from tests.daemon import DaemonProcess
from tests.integration.conftest import header_values, request, start_conformance_daemon
from tests.integration.http_expect import encoded_as_we_send, log_lines_of
from tests.mirrorlist_html import read_page
from tests.scenario import CONFORMANCE
from tests.servers import RedisServer

PAGES = CONFORMANCE / "mirrorlist"
# Reference bug fixed (§20 item 13, docs/differences.md "ASN 0"): a client without ASN no
# longer gets the same-AS bonus for mirrors without ASN, so mexico's ranks and percentages
# differ on purpose; its rows are compared as a set, without rank and selection.
ASN_ZERO_CLIENTS = {"mexico"}
RANKED_KEYS = ("rank", "shown_name", "mirror", "url_text", "url_href", "country", "continent",
               "distance", "selection")
EXCLUDED_KEYS = ("shown_name", "mirror", "url_text", "url_href", "country", "continent",
                 "distance", "reason")


def client_pages() -> list[dict[str, Any]]:
    cases = []
    for path in sorted(PAGES.glob("[0-9]*.json")):
        cases.extend(json.loads(path.read_text()))
    return cases


CLIENT_PAGES = client_pages()
SPECIALS = {case["label"]: case for case in json.loads((PAGES / "special-cases.json").read_text())}
SPECIAL_PAGES = [case for case in SPECIALS.values() if case["status"] == 200]


def project(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{key: row[key] for key in keys} for row in rows]


def encoded_hrefs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recorded rows with their links percent-encoded as we send them (upper-case hex, a
    deliberate difference: docs/differences.md "HTTP"; the same for plain names)."""
    return [{**row, "url_href": row["url_href"] and encoded_as_we_send(row["url_href"])}
            for row in rows]


def by_mirror(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: row["mirror"])


def check_page(headers: list[tuple[str, str]], body: bytes, expected: dict[str, Any],
               client: str = "") -> None:
    """Everything a person reads on the page, against the recorded page."""
    assert header_values(headers, "Content-Type") == ["text/html; charset=utf-8"]
    assert header_values(headers, "Cache-Control") == ["private, no-cache"]
    assert header_values(headers, "Server")[0].startswith("Mirrorbits/")
    assert header_values(headers, "Content-Length") == [str(len(body))]
    page = read_page(body.decode("utf-8"))
    ours_client = {k: v for k, v in page["client_box"].items() if k != "sentences"}
    assert ours_client == expected["client_box"]
    file = dict(expected["file"])
    if file["path"] is None:  # the repository root: the reference printed an empty path
        file["path"] = "/"
    assert {k: v for k, v in page["file"].items() if k != "sentence"} == file
    assert page["headline"] == file["path"]
    assert page["hashes_shown"] == expected["hashes_shown"]
    assert page["fallback_warning"] == expected["fallback_warning"]
    assert page["no_mirrors_message"] == expected["no_mirrors_message"]
    assert page["footer"]["version"] == version_string()
    assert page["footer"]["hostname"] == socket.gethostname()
    ranked = page["ranked"]
    expected = {**expected, "ranked": encoded_hrefs(expected["ranked"]),
                "excluded": encoded_hrefs(expected["excluded"])}
    assert [row["rank"] for row in ranked] == [f"{i}." for i in range(1, len(ranked) + 1)]
    if client in ASN_ZERO_CLIENTS:
        keys = tuple(k for k in RANKED_KEYS if k not in ("rank", "selection"))
        assert by_mirror(project(ranked, keys)) == by_mirror(project(expected["ranked"], keys))
    elif not expected["client_box"]["located"]:  # shuffled: the same rows in any order
        keys = tuple(k for k in RANKED_KEYS if k != "rank")
        assert by_mirror(project(ranked, keys)) == by_mirror(project(expected["ranked"], keys))
    else:
        assert project(ranked, RANKED_KEYS) == expected["ranked"]
    assert project(page["excluded"], EXCLUDED_KEYS) == expected["excluded"]


@pytest.mark.parametrize("case", CLIENT_PAGES, ids=lambda c: f"{c['client']}:{c['path']}")
def test_client_page(conformance_daemon: DaemonProcess, case: dict[str, Any]) -> None:
    assert case["order_is_random"] == (not case["client_box"]["located"])
    status, headers, body = request(conformance_daemon, "GET", case["request"],
                                    {"X-Forwarded-For": case["ip"]})
    assert status == case["status"] == 200
    check_page(headers, body, case, case["client"])


@pytest.mark.parametrize("case", SPECIAL_PAGES, ids=lambda c: c["label"])
def test_special_page(conformance_daemon: DaemonProcess, case: dict[str, Any]) -> None:
    status, headers, body = request(conformance_daemon, "GET", case["request"],
                                    case["req_headers"])
    assert status == case["status"]
    check_page(headers, body, case)


@pytest.mark.parametrize("label", ["missing file", "escaping symlink"])
def test_path_errors(conformance_daemon: DaemonProcess, label: str) -> None:
    case = SPECIALS[label]
    status, headers, body = request(conformance_daemon, "GET", case["request"],
                                    case["req_headers"])
    assert (status, body.decode()) == (case["status"], case["body"])
    assert header_values(headers, "Content-Type") == ["text/plain; charset=utf-8"]


def test_if_modified_since_still_shows_the_page(conformance_daemon: DaemonProcess) -> None:
    # Reference bug fixed (§20 item 19): the reference answered this ?mirrorlist request with
    # a bodiless 304; a person asking for the page always gets the page.
    case = SPECIALS["If-Modified-Since -> 304"]
    assert case["status"] == 304
    status, headers, body = request(conformance_daemon, "GET", case["request"],
                                    case["req_headers"])
    assert status == 200
    assert header_values(headers, "Last-Modified") == []
    expected = next(c for c in CLIENT_PAGES
                    if c["ip"] == case["req_headers"]["X-Forwarded-For"]
                    and c["request"] == case["request"])
    check_page(headers, body, expected, expected["client"])


def test_head_has_the_headers_and_no_body(conformance_daemon: DaemonProcess) -> None:
    headers_for = {"X-Forwarded-For": "100.96.1.10"}
    _, get_headers, get_body = request(conformance_daemon, "GET", "/ANNOUNCE.md?mirrorlist",
                                       headers_for)
    status, headers, body = request(conformance_daemon, "HEAD", "/ANNOUNCE.md?mirrorlist",
                                    headers_for)
    assert (status, body) == (200, b"")
    for name in ("Content-Type", "Cache-Control", "Content-Length"):
        assert header_values(headers, name) == header_values(get_headers, name)
    assert header_values(headers, "Content-Length") == [str(len(get_body))]


def test_mirrorlist_wins_over_stats(conformance_daemon: DaemonProcess) -> None:
    status, headers, body = request(conformance_daemon, "GET", "/ANNOUNCE.md?stats&mirrorlist",
                                    {"X-Forwarded-For": "100.96.6.10"})
    assert status == 200
    expected = SPECIALS["fromip overrides X-Forwarded-For"]  # the same client, capetown
    check_page(headers, body, expected)


def test_page_is_not_logged(conformance_daemon: DaemonProcess) -> None:
    answers = log_lines_of(conformance_daemon, [
        ("GET", "/ANNOUNCE.md?mirrorlist", {"X-Forwarded-For": "100.96.6.10"}),
        ("HEAD", "/ANNOUNCE.md", {"X-Forwarded-For": "100.96.6.10"}),  # logged, not counted
    ])
    (page_status, _, _, page_lines), (redirect_status, _, _, redirect_lines) = answers
    assert (page_status, page_lines) == (200, [])
    assert redirect_status == 302 and len(redirect_lines) == 1


def total_downloads(daemon: DaemonProcess, path: str) -> int:
    status, _, body = request(daemon, "GET", f"{path}?stats", {})
    assert status == 200
    return int(json.loads(body)["Total"])


def test_page_is_not_counted(tmp_path: Path) -> None:
    # A daemon of its own: counting changes the statistics other tests read.
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    try:
        daemon = start_conformance_daemon(tmp_path / "daemon", server)
        try:
            path, client = "/ANNOUNCE.md", {"X-Forwarded-For": "100.96.6.10"}
            before = total_downloads(daemon, path)
            for _ in range(3):
                assert request(daemon, "GET", f"{path}?mirrorlist", client)[0] == 200
            assert request(daemon, "GET", path, client)[0] == 302
            # The pages came first: had they been counted, they would be written no later.
            deadline = time.monotonic() + 15
            while (total := total_downloads(daemon, path)) == before:
                assert time.monotonic() < deadline, "the download was never counted"
                time.sleep(0.05)
            assert total == before + 1
        finally:
            daemon.stop()
    finally:
        server.stop()
