"""Comparing our daemon's HTTP answers with the recorded answers of the reference.

A recorded answer is ``{"status", "headers": [[name, value], ...], "body"}`` (gzip bodies as
``body_gzip_base64`` + ``body_decompressed``), see the conformance README §2-§3.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from tests.daemon import DaemonProcess
from tests.integration.conftest import header_values, raw_header, request

# The headers whose presence and value matter (Date is volatile, framing may differ:
# the reference streams JSON chunked where we send a Content-Length).
COMPARED_HEADERS = ("Location", "Link", "Content-Type", "Cache-Control", "Last-Modified",
                    "X-Content-Type-Options", "Content-Encoding")

LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} ")
LOG_LINE = re.compile(
    r'^(?P<head>\S+ \d+ \S+ ".*" ip:\S+) mirror:(?P<mirror>\S+)(?P<fallback> fallback:true)? '
    r"(?:same)?asn:\d+ distance:\d+\.\d\dkm countries:\S*$"
)


def encoded_as_we_send(url: str) -> str:
    """A URL the reference sent, percent-encoded as we send it (deliberate difference,
    docs/differences.md "HTTP"): the reference escaped only bytes >= 0x80 (lower-case hex) in
    ``Location``, nothing in ``Link``; we encode every byte of the file path but unreserved
    characters and ``/`` (RFC 3986, upper-case hex). Identical for plain names."""
    head, sep, query = url.partition("?")
    scheme, colon, rest = head.partition("://")
    prefix, path = "", head
    if colon:
        host, slash, path = rest.partition("/")
        prefix = scheme + colon + host + slash
    return prefix + quote(unquote(path), safe="/") + sep + query


def encoded_link(value: str) -> str:
    """A recorded ``Link`` value with its URL :func:`encoded_as_we_send`."""
    url, close, rest = value[1:].partition(">")
    return "<" + encoded_as_we_send(url) + close + rest


def recorded_headers(case: dict[str, Any], name: str) -> list[str]:
    values = [value for key, value in case["headers"] if key.lower() == name.lower()]
    if name.lower() == "location":
        return [encoded_as_we_send(value) for value in values]
    if name.lower() == "link":
        return [encoded_link(value) for value in values]
    return values


def recorded_outcome(outcome: list[Any]) -> list[Any]:
    """A recorded ``[status, Location, [Link, ...]]``, encoded as we send it."""
    status, location, links = outcome
    return [status, None if location is None else encoded_as_we_send(location),
            [encoded_link(link) for link in links]]


# The one Link value we add to the reference's (docs/differences.md "HTTP"): the redirect's
# pointer to the file's Metalink; the comparisons leave it out.
METALINK_LINK_SUFFIX = '?meta4>; rel=describedby; type="application/metalink4+xml"'


def reference_links(values: list[str]) -> list[str]:
    """``Link`` values without the one that points to the Metalink."""
    return [value for value in values if not value.endswith(METALINK_LINK_SUFFIX)]


def our_headers(headers: list[tuple[str, str]], name: str) -> list[str]:
    values = [raw_header(v) for v in header_values(headers, name)]
    return reference_links(values) if name.lower() == "link" else values


def assert_headers(case: dict[str, Any], headers: list[tuple[str, str]],
                   skip: tuple[str, ...] = ()) -> None:
    """Every compared header as recorded; ``Server`` present exactly when it was."""
    for name in COMPARED_HEADERS:
        if name not in skip:
            assert our_headers(headers, name) == recorded_headers(case, name), name
    server = header_values(headers, "Server")
    if recorded_headers(case, "Server"):
        assert len(server) == 1 and server[0].startswith("Mirrorbits/")
    else:
        assert server == []


def body_text(case: dict[str, Any], headers: list[tuple[str, str]], body: bytes) -> str:
    """Our body as text, gunzipped when it is sent compressed."""
    if header_values(headers, "Content-Encoding") == ["gzip"]:
        body = gzip.decompress(body)
    return body.decode("utf-8")


def recorded_body(case: dict[str, Any]) -> str:
    return str(case["body_decompressed"] if "body_gzip_base64" in case else case["body"])


def assert_same_document_any_order(ours: str, theirs: str,
                                   orders: list[list[str]] | None = None) -> list[str]:
    """A JSON answer whose MirrorList order is a draw: same mirrors, same everything else.

    Returns our order; when ``orders`` is given it must be one of them.
    """
    mine, recorded = json.loads(ours), json.loads(theirs)
    order = [m["Name"] for m in mine["MirrorList"]]
    if orders is not None:
        assert order in orders
    key = lambda m: m["ID"]  # noqa: E731
    assert sorted(mine["MirrorList"], key=key) == sorted(recorded["MirrorList"], key=key)
    assert {k: v for k, v in mine.items() if k != "MirrorList"} == {
        k: v for k, v in recorded.items() if k != "MirrorList"}
    return order


def redirect_outcome(status: int, headers: list[tuple[str, str]]) -> list[Any]:
    """``[status, Location, [Link, ...]]`` as in ``redirect_outcomes_HEAD``."""
    location = our_headers(headers, "Location")
    return [status, location[0] if location else None, our_headers(headers, "Link")]


def strip_log_prefix(line: str) -> str:
    match = LOG_PREFIX.match(line)
    assert match, line
    return line[match.end():]


def download_log_path(daemon: DaemonProcess) -> Path:
    """The daemon's ``downloads.log`` (LogDir is ``<root>/logs``, see conftest)."""
    return daemon.workdir.parent / "logs" / "downloads.log"


Request = tuple[str, str, dict[str, str]]


Answer = tuple[int, list[tuple[str, str]], bytes]
LoggedAnswer = tuple[int, list[tuple[str, str]], bytes, list[str]]


def log_lines_of(daemon: DaemonProcess, requests: list[Request],
                 timeout: float = 15.0) -> list[LoggedAnswer]:
    """Send ``requests`` and return each answer with the download-log lines it wrote.

    A marker request (HEAD, never counted, from an address of this run's own IPv6 network)
    follows each request, so the lines between two markers belong to the request between
    them. (An X-Forwarded-For that is not an IP address is not logged: the peer is.)
    """
    network = random.getrandbits(64) << 64 | 0xFD << 120

    def marker_address(number: int) -> str:
        return str(ipaddress.IPv6Address(network | number))

    def marker(number: int) -> None:
        request(daemon, "HEAD", "/ANNOUNCE.md", {"X-Forwarded-For": marker_address(number)})

    marker(0)
    answers = []
    for index, (method, path, headers) in enumerate(requests):
        answers.append(request(daemon, method, path, headers))
        marker(index + 1)
    last = f" ip:{marker_address(len(requests))} "
    log_path = download_log_path(daemon)
    deadline = time.monotonic() + timeout
    while not (log_path.exists() and last in log_path.read_text("utf-8")):
        assert time.monotonic() < deadline, "download log not flushed"
        time.sleep(0.05)
    lines = [strip_log_prefix(line) for line in log_path.read_text("utf-8").splitlines()
             if not line.startswith("#")]
    markers = {f" ip:{marker_address(number)} ": number for number in range(len(requests) + 1)}
    per_request: list[list[str]] = [[] for _ in requests]
    current: int | None = None
    for line in lines:
        found = next((number for text, number in markers.items() if text in line), None)
        if found is not None:
            current = found
        elif current is not None and current < len(requests):
            per_request[current].append(line)
    return [(*answer, per_request[i]) for i, answer in enumerate(answers)]
