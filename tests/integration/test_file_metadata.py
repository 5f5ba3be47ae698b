"""What the redirector says about a file, on the real daemon and the recorded scenario: a
redirect's digests (``Repr-Digest``, ``Digest``), matching the bytes of the repository, and its
``Link`` to the file's Metalink 4 (``?meta4``, or ``Accept: application/metalink4+xml``), which
lists the mirrors a JSON request gets, with the file's size and hashes."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin

import pytest

from tests.daemon import DaemonProcess
from tests.integration.conftest import header_values, request, start_conformance_daemon
from tests.scenario import content, scenario
from tests.servers import RedisServer
from tests.unit.test_metalink import NS, assert_valid

LISBON = "100.96.1.10"
FILES = [entry for entry in scenario()["repository"]["files"] if entry.get("sha256")]


@pytest.fixture(scope="module")
def conformance_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """The recorded scenario on a daemon and Redis of this module's own: the GETs here count
    downloads, which the shared daemon's ``?stats`` expectations must not see."""
    server = RedisServer(workdir=Path(tmp_path_factory.mktemp("metadata-redis")))
    server.start()
    try:
        daemon = start_conformance_daemon(Path(tmp_path_factory.mktemp("metadata")), server)
        yield daemon
        daemon.stop()
    finally:
        server.stop()


@pytest.mark.parametrize("entry", FILES, ids=lambda e: e["path"])
@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_redirect_digests_match_the_bytes(conformance_daemon: DaemonProcess,
                                          entry: dict[str, Any], method: str) -> None:
    status, headers, _ = request(conformance_daemon, method, entry["path"],
                                 {"X-Forwarded-For": LISBON})
    if status != 302:
        pytest.skip(f"{entry['path']} is not redirected ({status})")
    data = content(entry["content"])
    sha256 = b64encode(hashlib.sha256(data).digest()).decode()
    assert header_values(headers, "Repr-Digest") == [f"sha-256=:{sha256}:"]
    legacy = header_values(headers, "Digest")
    assert len(legacy) == 1
    assert legacy[0].split(",") == [
        f"SHA-256={sha256}", "SHA=" + b64encode(hashlib.sha1(data).digest()).decode(),
        "MD5=" + b64encode(hashlib.md5(data).digest()).decode()]


def test_no_digest_on_a_directory_or_json(conformance_daemon: DaemonProcess) -> None:
    _, headers, _ = request(conformance_daemon, "GET", FILES[0]["path"],
                            {"X-Forwarded-For": LISBON, "Accept": "application/json"})
    assert header_values(headers, "Repr-Digest") == []


def metalink_of(daemon: DaemonProcess, path: str, query: str = "?meta4",
                accept: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = {"X-Forwarded-For": LISBON}
    if accept is not None:
        headers["Accept"] = accept
    return request(daemon, "GET", path + query, headers)


@pytest.mark.parametrize("entry", FILES, ids=lambda e: e["path"])
def test_metalink_lists_the_mirrors_of_a_json_answer(conformance_daemon: DaemonProcess,
                                                     entry: dict[str, Any],
                                                     tmp_path: Path) -> None:
    path = entry["path"]
    status, headers, body = metalink_of(conformance_daemon, path)
    _, _, document = request(conformance_daemon, "GET", path,
                             {"X-Forwarded-For": LISBON, "Accept": "application/json"})
    listed = json.loads(document)["MirrorList"]
    if not listed:
        assert status == 503
        return
    assert status == 200
    assert header_values(headers, "Content-Type") == ["application/metalink4+xml"]
    assert_valid(body, tmp_path)
    (element,) = ET.fromstring(body).findall(NS + "file")
    data = content(entry["content"])
    assert element.get("name") == path.rsplit("/", 1)[-1]
    assert element.findtext(NS + "size") == str(len(data))
    assert {h.get("type"): h.text for h in element.findall(NS + "hash")} == {
        "sha-256": hashlib.sha256(data).hexdigest(), "sha-1": hashlib.sha1(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest()}
    urls = element.findall(NS + "url")
    assert [u.get("priority") for u in urls] == [str(i) for i in range(1, len(urls) + 1)]
    assert sorted(u.text or "" for u in urls) == sorted(
        urljoin(m["AbsoluteURL"], request_path(path)) for m in listed)


def request_path(path: str) -> str:
    """``path`` without its leading slash, percent-encoded as we send it."""
    return quote(path[1:], safe="/")


def test_accept_header_and_describedby_link(conformance_daemon: DaemonProcess) -> None:
    path = FILES[0]["path"]
    status, headers, _ = request(conformance_daemon, "HEAD", path, {"X-Forwarded-For": LISBON})
    assert status == 302
    described = [v for v in header_values(headers, "Link") if "rel=describedby" in v]
    name = request_path(path).rsplit("/", 1)[-1]
    assert described == [f'<{name}?meta4>; rel=describedby; type="application/metalink4+xml"']
    target = urljoin("http://host" + "/" + request_path(path), described[0][1:].split(">")[0])
    assert target == "http://host/" + request_path(path) + "?meta4"
    by_query = metalink_of(conformance_daemon, path)
    by_accept = metalink_of(conformance_daemon, path, "",
                            "application/metalink4+xml, */*;q=0.1")
    assert by_query[0] == by_accept[0] == 200
    assert header_values(by_accept[1], "Content-Type") == ["application/metalink4+xml"]
    element = ET.fromstring(by_accept[2]).find(f"{NS}file")
    assert element is not None and element.get("name") == unquote(name)


def test_metalink_of_a_directory_or_a_missing_file(conformance_daemon: DaemonProcess) -> None:
    assert metalink_of(conformance_daemon, "/pool/")[0] == 404
    assert metalink_of(conformance_daemon, "/no/such/file")[0] == 404
