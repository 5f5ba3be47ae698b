"""When no mirror qualifies, ``?mirrorlist`` and JSON say why; a download still gets its 503.

A real daemon (``--no-monitor``) on a real redis-server; one file held by four mirrors, each
excluded for another reason: down, disabled, a copy of another size, and limited to its
country. Without fallbacks the page is served with the reference's 503 status and says that a
download gets a 503, a JSON request gets a 503 with the excluded mirrors and the cause, and
the download itself keeps the plain 503. With fallbacks (a second daemon on the same
database) the page says which fallback a download goes to, and the JSON answer stays the
reference's. The other causes (a directory, a file on no mirror, a file not indexed yet)
are told apart.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis

from tests.daemon import DaemonProcess, base_config, record_mirror_files, repo_file
from tests.mirrorlist_html import read_page
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

MTIME = 1687249800  # 2023-06-20 08:30:00 UTC
MOD_TIME = "2023-06-20 08:30:00 +0000 UTC"
FILE = "/pkg/tool.bin"
CONTENT = b"tool!\n"
SEVILLE = "100.96.2.10"  # located (ES) in tests/fixtures/geo
FALLBACKS = ("Fallbacks:\n  - URL: https://fb.example.net/pub/\n    CountryCode: ES\n"
             "    ContinentCode: EU\n")
# Mirror name -> its exclusion reason, in the page's order (sorted by reason).
REASONS = {
    "limited": "Country only",
    "off": "Disabled",
    "stale": "File size mismatch",
    "dead": "Unreachable / Not HTTPS",  # an http:// URL: not HTTPS, and HTTP is down
}
ALL_EXCLUDED = ("Each of the 4 mirrors that have this file is excluded from this request; "
                "the reasons are in the table of excluded mirrors.")
GETS_503 = ("A download of this file gets 503 Service Unavailable: no fallback is configured "
            "(Fallbacks).")


@attrs.frozen
class Setup:
    plain: DaemonProcess  # no fallback
    rescued: DaemonProcess  # the same database, with a fallback
    repo: Path


def get(daemon: DaemonProcess, path: str,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = daemon.http
    req = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        with opener.open(req, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Both daemons for the whole module, on a redis-server of its own (the session's
    ``redis_db`` fixture flushes its database for each test)."""
    tmp_path = tmp_path_factory.mktemp("no-mirror")
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    redis_db = redis.Redis(host=server.host, port=server.port, decode_responses=True)
    try:
        yield from _daemons(tmp_path, server, redis_db)
    finally:
        redis_db.close()
        server.stop()


def _daemons(tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> Iterator[Setup]:
    repo = tmp_path / "repo"
    repo_file(repo, FILE, CONTENT, MTIME)
    repo_file(repo, "/pkg/nowhere.txt", b"on no mirror\n", MTIME)
    values = base_config(repo, redis_server.address)
    plain = DaemonProcess(workdir=tmp_path / "plain", values=values, args=["--no-monitor"])
    rescued = DaemonProcess(workdir=tmp_path / "rescued",
                            values=base_config(repo, redis_server.address), raw=FALLBACKS,
                            args=["--no-monitor"])
    plain.start()
    try:
        rescued.start()
        assert plain.ctl("refresh").returncode == 0
        for index, name in enumerate(("dead", "off", "stale", "limited"), start=1):
            flags = ["-country-only"] if name == "limited" else []
            added = plain.ctl("add", "-http", f"http://127.0.0.{60 + index}/", *flags, name)
            assert added.returncode == 0, added.stderr
            size = len(CONTENT) + (1 if name == "stale" else 0)
            record_mirror_files(redis_db, index, {FILE: size}, MOD_TIME)
            if name != "off":
                assert plain.ctl("enable", name).returncode == 0
        redis_db.hset("MIRROR_1", mapping={"httpUp": "0", "httpDownReason": "Unreachable"})
        redis_db.publish("_mirrorbits_mirror_update", "1")
        for daemon in (plain, rescued):
            _wait_until_every_mirror_is_read(daemon)
        yield Setup(plain, rescued, repo)
    finally:
        rescued.stop()
        plain.stop()


def _wait_until_every_mirror_is_read(daemon: DaemonProcess) -> None:
    """Until the daemon excludes each mirror for its reason: the ``ctl`` commands and the
    messages published above return before a daemon has read them (under load, a request
    made at once still found "dead" up, as :func:`record_mirror_files` had marked it)."""
    deadline = time.monotonic() + 30
    while True:
        _, _, body = get(daemon, FILE, {"Accept": "application/json", "X-Forwarded-For": SEVILLE})
        seen = {m["Name"]: m["ExcludeReason"] for m in json.loads(body).get("ExcludedList", [])}
        if seen == REASONS:
            return
        assert time.monotonic() < deadline, f"the mirrors' states were never read: {seen}"
        time.sleep(0.05)


def excluded_reasons(page: dict[str, Any]) -> dict[str, str]:
    return {row["mirror"]: row["reason"] for row in page["excluded"]}


def test_page_without_fallback_shows_every_excluded_mirror_and_the_503(setup: Setup) -> None:
    for headers in ({}, {"X-Forwarded-For": SEVILLE}):
        status, response_headers, body = get(setup.plain, FILE + "?mirrorlist", headers)
        assert status == 503
        assert response_headers["Content-Type"] == "text/html; charset=utf-8"
        page = read_page(body.decode("utf-8"))
        assert list(excluded_reasons(page).items()) == list(REASONS.items())
        assert page["excluded"][1]["url_text"] == ""  # a disabled mirror shows no URL
        assert page["no_mirror"] == {"cause": ALL_EXCLUDED, "outcome": GETS_503}
        assert page["ranked"] == [] and page["no_mirrors_message"]
        assert not page["fallback_warning"]
        assert page["file"]["size_bytes"] == len(CONTENT)
        assert page["headline"] == FILE


def test_download_keeps_the_plain_503(setup: Setup) -> None:
    for method_headers in ({}, {"Accept": "text/html"}):
        status, headers, body = get(setup.plain, FILE, method_headers)
        assert (status, body) == (503, b"Service Unavailable\n")
        assert headers["Content-Type"] == "text/plain; charset=utf-8"


def test_json_without_fallback_is_a_503_that_says_why(setup: Setup) -> None:
    status, headers, body = get(setup.plain, FILE, {"Accept": "application/json",
                                                    "X-Forwarded-For": SEVILLE})
    assert status == 503
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Cache-Control"] == "private, no-cache"
    assert body.endswith(b"}\n")
    doc = json.loads(body)
    assert list(doc) == ["FileInfo", "IP", "ClientInfo", "MirrorList", "ExcludedList",
                         "LocalJSPath", "Cause", "Explanation"]
    assert doc["FileInfo"]["Path"] == FILE and doc["FileInfo"]["Size"] == len(CONTENT)
    assert (doc["IP"], doc["ClientInfo"]["CountryCode"]) == (SEVILLE, "ES")
    assert doc["MirrorList"] == []
    # The candidates' order (mirror IDs), as in the reference's ExcludedList.
    assert [(m["Name"], m["ExcludeReason"]) for m in doc["ExcludedList"]] == [
        (name, REASONS[name]) for name in ("dead", "off", "stale", "limited")]
    assert doc["Cause"] == "all-excluded"
    assert doc["Explanation"] == ALL_EXCLUDED + " " + GETS_503
    status, _, pretty = get(setup.plain, FILE + "?pretty", {"Accept": "application/json"})
    assert status == 503 and pretty.startswith(b'{\n    "FileInfo"')
    assert json.loads(pretty)["Cause"] == "all-excluded"


def test_page_with_fallback_says_where_a_download_goes(setup: Setup) -> None:
    status, _, body = get(setup.rescued, FILE + "?mirrorlist", {"X-Forwarded-For": SEVILLE})
    assert status == 200
    page = read_page(body.decode("utf-8"))
    assert page["fallback_warning"]
    assert [row["url_text"] for row in page["ranked"]] == ["https://fb.example.net/pub/"]
    assert list(excluded_reasons(page).items()) == list(REASONS.items())
    assert page["no_mirror"] == {
        "cause": ALL_EXCLUDED,
        "outcome": "A download of this file is redirected to a fallback (Fallbacks), the "
                   "first in the table of mirrors: https://fb.example.net/pub/pkg/tool.bin"}
    status, _, body = get(setup.rescued, FILE + "?mirrorlist")  # 127.0.0.1: not located
    page = read_page(body.decode("utf-8"))
    assert status == 200 and page["no_mirror"]["outcome"] == (
        "A download of this file is redirected to one of the fallbacks (Fallbacks) in the "
        "table of mirrors, drawn at random for each request since your location is unknown.")
    status, headers, _ = get(setup.rescued, FILE, {"X-Forwarded-For": SEVILLE})
    assert (status, headers["Location"]) == (302, "https://fb.example.net/pub/pkg/tool.bin")


def test_json_with_fallback_stays_the_reference_document(setup: Setup) -> None:
    status, _, body = get(setup.rescued, FILE, {"Accept": "application/json",
                                                "X-Forwarded-For": SEVILLE})
    assert status == 200
    doc = json.loads(body)
    assert list(doc) == ["FileInfo", "IP", "ClientInfo", "MirrorList", "ExcludedList",
                         "Fallback", "LocalJSPath"]
    assert [m["Name"] for m in doc["MirrorList"]] == ["fallback0"]
    assert {m["Name"]: m["ExcludeReason"] for m in doc["ExcludedList"]} == REASONS


def test_other_causes_are_told_apart(setup: Setup) -> None:
    repo_file(setup.repo, "/pkg/new.txt", b"not indexed yet\n", MTIME)
    causes = {
        "/pkg/": ("directory", "This is a directory: only files are redirected to mirrors."),
        "/pkg/nowhere.txt": ("on-no-mirror", "No mirror has this file: none listed it at its "
                             "last scan (mirrorbits-ctl scan NAME scans a mirror again)."),
        "/pkg/new.txt": ("not-indexed", "This file is not in the index yet: the repository "
                         "scan has not reached it (mirrorbits-ctl refresh indexes the "
                         "repository now), or the database cannot be read."),
    }
    for path, (cause, text) in causes.items():
        status, _, body = get(setup.plain, path + "?mirrorlist")
        page = read_page(body.decode("utf-8"))
        assert status == 503, path
        assert page["no_mirror"] == {"cause": text, "outcome": GETS_503}, path
        assert page["excluded"] == [], path
        status, _, body = get(setup.plain, path, {"Accept": "application/json"})
        doc = json.loads(body)
        assert (status, doc["Cause"], doc["MirrorList"]) == (503, cause, []), path
        assert "ExcludedList" not in doc, path
        assert get(setup.plain, path)[2] == b"Service Unavailable\n", path
        status, _, body = get(setup.rescued, path + "?mirrorlist")
        page = read_page(body.decode("utf-8"))
        assert status == 200 and page["fallback_warning"], path
        assert page["no_mirror"]["cause"] == text, path
