"""Files with odd names reach clients byte for byte: real daemon, real mirror, curl and urllib.

The repository and two mirrors hold the same files, named with every character a URL treats
specially. The mirrors are directories of one ``python -m http.server`` on 127.0.0.41: one
whose URL the operator wrote with an escape (``my%20mirror``), one with non-ASCII
(``dépôt``), plus a fallback with a raw space in the configuration. ``curl -L`` and
``urllib.request`` follow the redirector's answers to the mirror and must get each file's bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urljoin

import attrs
import pytest

from tests.daemon import DaemonProcess, base_config, record_mirror_files, repo_file
from tests.mirrorlist_html import read_page
from tests.servers import RedisServer, StaticHTTPServer, env_without_proxies

MTIME = 1687249800  # 2023-06-20 08:30:00 UTC
MOD_TIME = "2023-06-20 08:30:00 +0000 UTC"
ODD_NAMES = [
    "notes #1 100%.txt", "what?.iso", "a+b.tar.gz", "plus+and space.txt",
    "gu\u00eda-r\u00e1pida.pdf", "\u65e5\u672c/\u65e5\u672c\u8a9e.txt", "semi;colon.txt",
    "a&b=c.txt", "it's.txt", "-leading-dash.txt", "%41 not an escape.txt", "%20.txt",
    "two  spaces.txt", "brackets[1](2)*!$.txt", "tilde~caret^.txt", "back`tick{brace}|.txt",
    "quote\"<angle>.txt", "back\\slash.txt", "colon:at@comma,.txt", "tab\there.txt",
    "dir with space/inner #frag?.bin",
]
FALLBACK_ONLY = "only on the fallback #2.txt"  # in the repository, on no mirror
# Each mirror: where its copy lives under the static server's root, its URL as written (after
# the server's), and as we send it.
MIRRORS = {
    "percent": ("my mirror", "my%20mirror/", "my%20mirror/"),
    "accent": ("d\u00e9p\u00f4t", "d\u00e9p\u00f4t/", "d%C3%A9p%C3%B4t/"),
}
FALLBACK_DIR = "fall back"
METALINK = "{urn:ietf:params:xml:ns:metalink}"


@attrs.frozen
class Setup:
    daemon: DaemonProcess
    contents: dict[str, bytes]  # repository path -> bytes
    mirror_url: str  # the static server's

    def url(self, path: str, query: str = "") -> str:
        host, port = self.daemon.http
        return f"http://{host}:{port}{quote(path, safe='/')}{query}"


def content_of(index: int, name: str) -> bytes:
    return f"{index}:{name}\n".encode() + os.urandom(1000 + 37 * index)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory,
          redis_server: RedisServer) -> Iterator[Setup]:
    """One daemon and mirror for the module: the tests only download."""
    tmp_path = tmp_path_factory.mktemp("odd-names")
    redis_db = redis_server.client()
    redis_db.flushall()
    repo, served = tmp_path / "repo", tmp_path / "served"
    contents = {"/" + name: content_of(i, name) for i, name in enumerate(ODD_NAMES)}
    for path, data in contents.items():
        repo_file(repo, path, data, MTIME)
        for directory, _, _ in MIRRORS.values():
            repo_file(served / directory, path, data, MTIME)
    fallback_data = content_of(len(ODD_NAMES), FALLBACK_ONLY)
    repo_file(repo, "/" + FALLBACK_ONLY, fallback_data, MTIME)
    repo_file(served / FALLBACK_DIR, "/" + FALLBACK_ONLY, fallback_data, MTIME)
    mirror = StaticHTTPServer(served, host="127.0.0.41")
    mirror.start()
    fallback = f'Fallbacks:\n  - URL: "{mirror.url}{FALLBACK_DIR}/"\n    CountryCode: FR\n'
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(repo, redis_server.address),
                           raw=fallback, args=["--no-monitor"])
    daemon.start()
    try:
        refreshed = daemon.ctl("refresh")
        assert refreshed.returncode == 0, refreshed.stderr
        assert redis_db.scard("FILES") == len(contents) + 1
        for mirror_id, (name, (_, written, _)) in enumerate(MIRRORS.items(), start=1):
            added = daemon.ctl("add", "-http", mirror.url + written, name)
            assert added.returncode == 0, added.stderr
            record_mirror_files(redis_db, mirror_id,
                                {path: len(data) for path, data in contents.items()}, MOD_TIME)
            assert daemon.ctl("enable", name).returncode == 0
        yield Setup(daemon, {**contents, "/" + FALLBACK_ONLY: fallback_data}, mirror.url)
    finally:
        daemon.stop()
        mirror.stop()
        redis_db.close()


def curl(url: str, out: Path) -> tuple[str, str]:
    """``curl -L`` to ``out``; (status of the last answer, its URL)."""
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(
        [binary, "-sS", "-L", "--max-redirs", "3", "--fail", "--noproxy", "*", "-o", str(out),
         "-w", "%{http_code} %{url_effective}", "--", url],
        capture_output=True, text=True, timeout=30, env=env_without_proxies())
    assert result.returncode == 0, (url, result.stderr)
    status, _, final = result.stdout.partition(" ")
    return status, final


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    """GET ``url`` with urllib, redirects followed; (body, final URL)."""
    with _OPENER.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
        return answer.read(), answer.geturl()


def on_a_mirror(final_url: str) -> bool:
    return final_url.startswith("http://127.0.0.41:")


def test_curl_and_urllib_download_every_odd_name_byte_for_byte(
        setup: Setup, tmp_path: Path) -> None:
    out = tmp_path / "download"
    for path, data in setup.contents.items():
        status, final = curl(setup.url(path), out)
        assert status == "200" and on_a_mirror(final), (path, final)
        assert out.read_bytes() == data, path
        body, final = fetch(setup.url(path))
        assert on_a_mirror(final) and body == data, (path, final)


def test_every_link_alternative_and_the_request_forms_lead_to_the_file(setup: Setup) -> None:
    no_redirect = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    for path, data in setup.contents.items():
        if path == "/" + FALLBACK_ONLY:
            continue
        # Sub-delimiters left raw, as browsers send them: the same file.
        request = urllib.request.Request(setup.url(path).replace("%3B", ";").replace("%2B", "+"))
        try:
            no_redirect.open(request, timeout=10)
        except urllib.error.HTTPError as answer:
            assert answer.code == 302, path
            location = answer.headers["Location"]
            links = answer.headers.get_all("Link") or []
        assert len(links) == 2, (path, links)
        alternative = re.fullmatch(r"<([^>]*)>; rel=duplicate; pri=1; geo=", links[0])
        assert alternative is not None, links
        assert {location, alternative[1]} == {
            setup.mirror_url + sent + quote(path[1:], safe="/") for _, _, sent in MIRRORS.values()}
        for url in (location, alternative[1]):
            assert fetch(url)[0] == data, url
        # The Metalink's link, relative to the request: the same file, the same mirrors.
        described = re.fullmatch(
            r'<([^>]*)>; rel=describedby; type="application/metalink4\+xml"', links[1])
        assert described is not None, links
        document = ET.fromstring(fetch(urljoin(setup.url(path), described[1]))[0])
        (element,) = document.findall(METALINK + "file")
        assert element.get("name") == path.rsplit("/", 1)[-1]
        assert {u.text for u in element.findall(METALINK + "url")} == {
            location, alternative[1]}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_json_urls_and_mirrorlist_links_lead_to_the_file(setup: Setup) -> None:
    path = "/notes #1 100%.txt"
    data = setup.contents[path]
    body, _ = fetch(setup.url(path), {"Accept": "application/json"})
    document = json.loads(body)
    assert document["FileInfo"]["Path"] == path  # a path, shown as it is
    bases = {mirror["AbsoluteURL"] for mirror in document["MirrorList"]}
    assert len(bases) == 2 and any("my%20mirror/" in base for base in bases)
    for base in bases:
        assert fetch(base + quote(path[1:], safe="/"))[0] == data
    page = read_page(fetch(setup.url(path, "?mirrorlist"))[0].decode())
    assert page["headline"] == page["file"]["path"] == path  # shown to a person as it is
    rows = page["ranked"]
    assert sorted(row["url_text"] for row in rows) == sorted(  # base URLs as written
        setup.mirror_url + written for _, written, _ in MIRRORS.values())
    assert len(rows) == 2
    for row in rows:
        assert fetch(row["url_href"])[0] == data, row["url_href"]


def test_fallback_url_written_with_a_space_is_sent_encoded(setup: Setup, tmp_path: Path) -> None:
    path = "/" + FALLBACK_ONLY
    status, final = curl(setup.url(path), tmp_path / "fallback")
    assert status == "200" and final.endswith("/fall%20back/only%20on%20the%20fallback%20%232.txt")
    assert (tmp_path / "fallback").read_bytes() == setup.contents[path]
    assert fetch(setup.url(path))[0] == setup.contents[path]
    assert unquote(final).endswith(FALLBACK_DIR + path)
