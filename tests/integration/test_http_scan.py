"""HTTP mirror scans (index pages) against real servers on loopback, compared with rsync scans.

The same tree is served by a real ``rsync --daemon`` and by index servers: the in-process one
of ``tests/indexserver.py`` (nginx HTML, nginx HTML with rounded sizes, Apache 2.4 table, nginx
JSON) and, when they are installed, a real nginx (``autoindex on``: HTML, rounded HTML, JSON) and
a real Apache (``mod_autoindex``: table, ``<pre>``, plain list). Each listing is committed to a real
redis-server as its own mirror, and the stored ``FILEINFO_`` hashes and ``MIRRORFILES_`` sets are
compared with the rsync mirror's.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from mirrorbits.config import HttpScan
from mirrorbits.model import Mirror
from mirrorbits.scan import http as http_scan
from mirrorbits.scan.commit import ScanResult, scan_mirror
from mirrorbits.scan.http import HttpScanner, scan_url
from mirrorbits.scan.rsync import ScanError, ScanListing, rsync_list
from mirrorbits.scan.walk import ScanAborted
from mirrorbits.store import keys
from mirrorbits.store.events import SCANNER_HTTP, SCANNER_RSYNC
from tests.indexserver import IndexServer
from tests.integration.test_rsync_scan import async_yield_fixture, client, ensure_deferred
from tests.integration.tls_support import tls_pair
from tests.servers import free_port, rsync_daemon, wait_for_port

pytestmark = pytest.mark.integration

__all__ = ["client"]  # fixture

REACTOR: Any = global_reactor
S = 1_000_000_000
T0 = 1_795_571_647  # 2026-11-24 22:34:07 UTC: not on a minute
SCAN_TIME = 1_795_600_000

# (path, size, mtime): sizes around Apache's 973-byte and nginx's 9999-byte limits
TREE = [
    ("/README", 11, T0),
    ("/pool/main/a/app_1.0_amd64.deb", 1_300_000, T0 + 61),
    ("/pool/main/a/app_1.0.dsc", 972, T0 + 122),
    ("/pool/main/a/app_1.0.tar.xz", 973, T0 + 183),
    ("/pool/main/b/big.iso", 10_000, T0 + 3600),
    ("/dir one/file two.txt", 2345, T0 + 86_400),
    ("/odd/a&b #1?.txt", 5, T0 + 9),
    ("/odd/café.iso", 9999, T0 + 19),
    ("/odd/100%.bin", 100, T0 + 29),
    ("/deep/1/2/3/4/leaf", 0, T0 + 39),
]
MIRRORS = {1: "rsync", 2: "http"}


def write_tree(root: Path) -> None:
    for path, size, mtime in TREE:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"m" * size)
        os.utime(target, (mtime, mtime))
    (root / "empty").mkdir()


@pytest.fixture
def tree() -> Iterator[Path]:
    """The tree, readable by anyone: nginx's and Apache's workers may run as ``nobody``."""
    root = Path(tempfile.mkdtemp(prefix="mirrorbits-tree-"))
    root.chmod(0o755)
    write_tree(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def rsync_url(tmp_path: Path, tree: Path) -> Iterator[str]:
    binary = shutil.which("rsync")
    if binary is None:
        pytest.skip("rsync is not installed")
    with rsync_daemon(tmp_path, {"tree": tree}) as server:
        yield server.url("tree")


@async_yield_fixture
async def serve(tree: Path) -> AsyncIterator[Any]:
    """``await serve(style, **settings)`` -> (server record, base URL); stopped at the end."""
    ports: list[Any] = []

    def start(style: str, **settings: Any) -> tuple[IndexServer, str]:
        server = IndexServer(root=str(tree), style=style, clock=REACTOR, **settings)
        port = REACTOR.listenTCP(0, server.site(), interface="127.0.0.1")
        ports.append(port)
        return server, f"http://127.0.0.1:{port.getHost().port}/"

    yield start
    for port in ports:
        await port.stopListening()


@pytest.fixture
def db(redis_db: redis.Redis) -> redis.Redis:
    for mirror_id, name in MIRRORS.items():
        redis_db.hset(keys.MIRRORS, str(mirror_id), name)
        redis_db.hset(keys.mirror(mirror_id), mapping={"ID": str(mirror_id), "name": name})
    redis_db.sadd(keys.FILES, *(path for path, _, _ in TREE))
    return redis_db


def clock() -> Clock:
    fake = Clock()
    fake.advance(SCAN_TIME)
    return fake


def scanner(**settings: Any) -> HttpScanner:
    values = HttpScan(**settings)
    return HttpScanner(REACTOR, lambda: values)


async def commit(client: Any, mirror_id: int, listing: ScanListing) -> ScanResult:
    async def lister(name: str) -> ScanListing:
        return listing

    protocol = SCANNER_RSYNC if mirror_id == 1 else SCANNER_HTTP
    return await scan_mirror(client, clock(), mirror_id, protocol, lister)


def stored(db: redis.Redis, mirror_id: int) -> dict[str, dict[str, str]]:
    """``FILEINFO_<id>_<path>`` of every path of ``MIRRORFILES_<id>``."""
    paths = db.smembers(keys.mirror_files(mirror_id))
    return {path: db.hgetall(keys.file_info(mirror_id, path)) for path in sorted(paths)}


def minute(info: dict[str, dict[str, str]]) -> dict[str, tuple[str, str]]:
    """(size, mtime truncated to the minute) per path."""
    return {path: (fields["size"], fields["modTime"][:16]) for path, fields in info.items()}


async def rsync_and_http(client: Any, db: redis.Redis, rsync_url: str,
                         listing: ScanListing) -> tuple[dict[str, Any], dict[str, Any]]:
    await commit(client, 1, await rsync_list(REACTOR, rsync_url, 30, name="rsync"))
    await commit(client, 2, listing)
    by_rsync, by_http = stored(db, 1), stored(db, 2)
    assert sorted(by_rsync) == sorted(path for path, _, _ in TREE)
    return by_rsync, by_http


@ensure_deferred
async def test_json_index_gives_what_rsync_gives(
    client: Any, db: redis.Redis, rsync_url: str, serve: Any
) -> None:
    server, url = serve("json")
    listing = await scanner().list(url, 60, name="http")
    by_rsync, by_http = await rsync_and_http(client, db, rsync_url, listing)
    assert by_http == by_rsync  # same paths, sizes and times to the second
    assert db.hget(keys.mirror(2), "lastSuccessfulSyncPrecision") == str(S)
    assert db.hget(keys.mirror(2), "lastSuccessfulSyncProtocol") == "2"
    assert server.paths("HEAD") == []  # every size is exact


@pytest.mark.parametrize("style", ["nginx", "nginx-rounded", "apache"])
@ensure_deferred
async def test_html_index_gives_rsync_sizes_and_minutes(
    client: Any, db: redis.Redis, rsync_url: str, serve: Any, style: str
) -> None:
    server, url = serve(style)
    listing = await scanner().list(url, 60, name="http")
    by_rsync, by_http = await rsync_and_http(client, db, rsync_url, listing)
    assert minute(by_http) == minute(by_rsync)
    assert all(fields["modTime"][17:19] == "00" for fields in by_http.values())
    # the selection truncates both times to the scan's precision: one minute
    assert db.hget(keys.mirror(2), "lastSuccessfulSyncPrecision") == str(60 * S)
    heads = sorted(server.paths("HEAD"))
    if style == "nginx":
        assert heads == []
    elif style == "nginx-rounded":  # above 9999 bytes
        assert heads == ["/pool/main/a/app_1.0_amd64.deb", "/pool/main/b/big.iso"]
    else:  # Apache rounds from 973 bytes on
        assert heads == ["/dir%20one/file%20two.txt", "/odd/caf%C3%A9.iso",
                         "/pool/main/a/app_1.0.tar.xz", "/pool/main/a/app_1.0_amd64.deb",
                         "/pool/main/b/big.iso"]
    # only the tree's own directories were asked: no parent, other host or sort link
    assert sorted(server.paths("GET")) == [
        "/", "/deep/", "/deep/1/", "/deep/1/2/", "/deep/1/2/3/", "/deep/1/2/3/4/",
        "/dir%20one/", "/empty/", "/odd/", "/pool/", "/pool/main/", "/pool/main/a/",
        "/pool/main/b/"]


@ensure_deferred
async def test_rescans_ask_conditionally_and_reuse_sizes(
    client: Any, db: redis.Redis, tree: Path, serve: Any
) -> None:
    server, url = serve("apache")
    http = scanner()
    first = await http.list(url, 60, name="http")
    heads = len(server.paths("HEAD"))
    assert heads == 5
    server.seen.clear()
    second = await http.list(url, 60, name="http")
    assert second == first
    assert server.paths("HEAD") == []  # unchanged rows keep the sizes asked before
    gets = [s for s in server.seen if s.method == "GET"]
    assert len(gets) == 13
    # the ETag only: the test server dates a page by its directory (not changed below)
    assert all("if-none-match" in s.headers and "if-modified-since" not in s.headers
               for s in gets)

    # a file grows (same rounded size, later time); another directory appears
    grown = tree / "pool/main/a/app_1.0_amd64.deb"
    grown.write_bytes(b"m" * 1_300_001)
    os.utime(grown, (T0 + 600, T0 + 600))
    (tree / "new").mkdir()
    (tree / "new" / "file").write_bytes(b"n" * 2000)
    server.seen.clear()
    third = await http.list(url, 60, name="http")
    files = {f.path: (f.size, f.mod_time_ns) for f in third.files}
    assert files["/pool/main/a/app_1.0_amd64.deb"] == (1_300_001, (T0 + 600) // 60 * 60 * S)
    assert files["/new/file"][0] == 2000
    assert sorted(server.paths("HEAD")) == ["/new/file", "/pool/main/a/app_1.0_amd64.deb"]

    # a fresh scanner (a restart) remembers nothing: no conditional request
    server.seen.clear()
    await scanner().list(url, 60, name="http")
    assert not any("if-none-match" in s.headers for s in server.seen)
    await commit(client, 2, third)
    assert db.hget(keys.file_info(2, "/new/file"), "size") == "2000"


@ensure_deferred
async def test_memory_is_bounded(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_scan, "MAX_REMEMBERED", 1)
    first, first_url = serve("json")
    second, second_url = serve("json")
    http = scanner()
    await http.list(first_url, 60)
    await http.list(second_url, 60)  # the first URL is forgotten
    first.seen.clear()
    second.seen.clear()
    await http.list(first_url, 60)
    await http.list(second_url, 60)
    assert not any("if-none-match" in s.headers for s in first.seen)
    assert not any("if-none-match" in s.headers for s in second.seen)  # forgotten in turn
    await http.list(second_url, 60)
    assert any("if-none-match" in s.headers for s in second.seen)


@ensure_deferred
async def test_a_head_without_length_asks_for_one_byte(serve: Any) -> None:
    server, url = serve("apache", head_length=False)
    listing = await scanner().list(url, 60, name="http")
    files = {f.path: f.size for f in listing.files}
    assert files == {path: size for path, size, _ in TREE}
    ranged = [s for s in server.seen if "range" in s.headers]
    assert len(ranged) == 5 and all(s.headers["range"] == "bytes=0-0" for s in ranged)


@ensure_deferred
async def test_head_budget_leaves_unsized_files_out(serve: Any) -> None:
    server, url = serve("apache")
    listing = await scanner(max_head_requests=2).list(url, 60, name="http")
    assert len(server.paths("HEAD")) == 2
    assert len(listing.files) == len(TREE) - 3
    assert any("3 files left out" in warning for warning in listing.warnings)


@ensure_deferred
async def test_concurrency_is_bounded_and_requests_are_spaced(serve: Any) -> None:
    server, url = serve("nginx", slow=0.2)
    await scanner(concurrency=3).list(url, 60, name="http")
    assert server.most_in_flight == 3  # /deep/.., /dir one/, /empty/, ... wait in parallel

    spaced, url = serve("json")
    await scanner(concurrency=4, delay=0.15).list(url, 60, name="http")
    starts = sorted(s.started for s in spaced.seen)
    assert len(starts) == 13
    gaps = sorted(b - a for a, b in itertools.pairwise(starts))
    # arrivals jitter under load (a new connection's handshake), starts on the client do not
    assert starts[-1] - starts[0] > 0.9 * 12 * 0.15, gaps
    assert gaps[len(gaps) // 2] > 0.12, gaps


@ensure_deferred
async def test_timeouts(serve: Any) -> None:
    _, url = serve("json", stall=frozenset({"/odd/"}))
    with pytest.raises(ScanError, match=r"^http error http://127\.0\.0\.1:\d+/odd/: no answer "
                                        r"within 2 s$"):
        await scanner(timeout=2).list(url, 60, name="http")
    with pytest.raises(ScanError, match=r"^http error: no complete listing within 0\.3 s$"):
        await scanner(timeout=30).list(url, 0.3, name="http")


@ensure_deferred
async def test_statuses_page_cap_and_cancel(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server, url = serve("json", answers={"/odd/": 403, "/": 404})
    with pytest.raises(ScanError, match=r"^http error http://127\.0\.0\.1:\d+/: HTTP status 404$"):
        await scanner().list(url, 60, name="http")
    del server.answers["/"]
    listing = await scanner().list(url, 60, name="http")
    assert not any(f.path.startswith("/odd/") for f in listing.files)
    assert "skipping /odd/: HTTP status 403" in listing.warnings
    assert len(listing.files) == len(TREE) - 3

    # a redirect is not followed, even within the tree (it could lead anywhere)
    other, elsewhere = serve("json")
    server.answers.clear()
    server.redirects["/odd/"] = elsewhere + "odd/"
    listing = await scanner().list(url, 60, name="http")
    assert f"skipping /odd/: HTTP status 302 (to {elsewhere}odd/)" in listing.warnings
    assert other.seen == []
    assert len(listing.files) == len(TREE) - 3
    server.redirects.clear()

    with pytest.raises(ScanError, match=r"^http error http://127\.0\.0\.1:\d+/: larger than "
                                        r"100 bytes$"):
        monkeypatch.setattr(http_scan, "MAX_PAGE_BYTES", 100)
        await scanner().list(url, 60, name="http")
    monkeypatch.undo()

    stalled, url = serve("json", stall=frozenset({"/pool/"}))
    scanning = Deferred.fromCoroutine(scanner().list(url, 60, name="http"))
    await deferLater(REACTOR, 0.3)
    scanning.cancel()
    with pytest.raises(ScanAborted):
        await scanning
    await deferLater(REACTOR, 0.2)
    assert stalled.in_flight == 0  # the stalled request's connection was closed

    with pytest.raises(ScanError, match="does not start with http:// or https://"):
        await scanner().list("ftp://127.0.0.1/", 60)
    with pytest.raises(ScanError, match=r"^http error http://127\.0\.0\.1:1/: .*refused"):
        await scanner().list("http://127.0.0.1:1/", 60)


@ensure_deferred
async def test_a_symbolic_link_loop_is_not_walked_forever(tree: Path, serve: Any) -> None:
    (tree / "pool" / "back").symlink_to("..")  # the server follows it: /pool/back/ == /
    server, url = serve("json")
    listing = await scanner().list(url, 60, name="http")
    assert any("directory loop" in warning for warning in listing.warnings)
    assert "/README" in {f.path for f in listing.files}
    assert len(server.paths("GET")) < 40


@ensure_deferred
async def test_https_and_a_scheme_less_url(tree: Path) -> None:
    host = "127.0.0.1"
    certificate, ca = tls_pair(host)
    server = IndexServer(root=str(tree), style="json", clock=REACTOR)
    port = REACTOR.listenSSL(0, server.site(), certificate.options(), interface=host)
    try:
        address = f"{host}:{port.getHost().port}/"
        mirror = Mirror(id=2, name="m2", http_url=address, https_up=True)
        url = scan_url(mirror)
        assert url == "https://" + address
        listing = await HttpScanner(REACTOR, HttpScan, trust_root=ca).list(url, 60)
        assert len(listing.files) == len(TREE)
        with pytest.raises(ScanError, match=r"^http error https://.*certificate verify failed"):
            await scanner().list(url, 60)  # the system's CAs do not know the test's CA
    finally:
        await port.stopListening()


# --- a real nginx ------------------------------------------------------------------------


@pytest.fixture
def nginx(tmp_path: Path, tree: Path) -> Iterator[str]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                       else None)
    if binary is None:
        pytest.skip("nginx is not installed")
    work = tmp_path / "nginx"
    (work / "temp").mkdir(parents=True)
    port = free_port()
    temp = " ".join(f"{kind}_temp_path {work / 'temp'};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(f"""
pid {work / 'nginx.pid'};
error_log {work / 'error.log'};
daemon off;
events {{ worker_connections 64; }}
http {{
  access_log off; {temp}
  server {{
    listen 127.0.0.1:{port};
    location /html/ {{ alias {tree}/; autoindex on; }}
    location /rounded/ {{ alias {tree}/; autoindex on; autoindex_exact_size off; }}
    location /json/ {{ alias {tree}/; autoindex on; autoindex_format json; }}
  }}
}}
""")
    process = subprocess.Popen([binary, "-c", str(work / "nginx.conf"), "-e",
                                str(work / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(10)


@ensure_deferred
async def test_real_nginx_json_gives_what_rsync_gives(
    client: Any, db: redis.Redis, rsync_url: str, nginx: str
) -> None:
    listing = await scanner().list(nginx + "json/", 60, name="http")
    by_rsync, by_http = await rsync_and_http(client, db, rsync_url, listing)
    assert by_http == by_rsync


@pytest.mark.parametrize("location", ["html/", "rounded/"])
@ensure_deferred
async def test_real_nginx_html_gives_rsync_sizes_and_minutes(
    client: Any, db: redis.Redis, rsync_url: str, nginx: str, location: str
) -> None:
    listing = await scanner().list(nginx + location, 60, name="http")
    by_rsync, by_http = await rsync_and_http(client, db, rsync_url, listing)
    assert minute(by_http) == minute(by_rsync)
    assert db.hget(keys.mirror(2), "lastSuccessfulSyncPrecision") == str(60 * S)


# --- a real Apache -----------------------------------------------------------------------


@pytest.fixture
def apache(tmp_path: Path, tree: Path) -> Iterator[str]:
    binary = shutil.which("apache2") or ("/usr/sbin/apache2" if os.path.exists("/usr/sbin/apache2")
                                         else None)
    modules = Path("/usr/lib/apache2/modules")
    if binary is None or not modules.is_dir():
        pytest.skip("apache2 is not installed")
    work = tmp_path / "apache"
    (work / "logs").mkdir(parents=True)
    port = free_port()
    loads = "\n".join(f"LoadModule {name}_module {modules}/mod_{name}.so"
                      for name in ("mpm_event", "authz_core", "dir", "autoindex", "alias"))
    user = "User #65534\nGroup #65534" if os.geteuid() == 0 else ""  # root may not serve
    layouts = {"table": "FancyIndexing VersionSort HTMLTable NameWidth=* Charset=UTF-8",
               "pre": "FancyIndexing", "plain": "-FancyIndexing"}
    locations = "\n".join(
        f"Alias /{name}/ {tree}/\n<Location /{name}/>\n  IndexOptions {options}\n</Location>"
        for name, options in layouts.items())
    (work / "httpd.conf").write_text(f"""ServerRoot {work}
ServerName 127.0.0.1
PidFile {work / 'httpd.pid'}
ErrorLog {work / 'logs' / 'error.log'}
Listen 127.0.0.1:{port}
{loads}
{user}
DocumentRoot {tree}
<Directory {tree}>
  Options Indexes
  Require all granted
</Directory>
{locations}
""")
    process = subprocess.Popen([binary, "-f", str(work / "httpd.conf"), "-DFOREGROUND"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("layout", ["table", "pre"])
@ensure_deferred
async def test_real_apache_fancy_index_gives_rsync_sizes_and_minutes(
    client: Any, db: redis.Redis, rsync_url: str, apache: str, layout: str
) -> None:
    listing = await scanner().list(apache + layout + "/", 60, name="http")
    by_rsync, by_http = await rsync_and_http(client, db, rsync_url, listing)
    assert minute(by_http) == minute(by_rsync)  # rounded sizes asked with HEAD


@ensure_deferred
async def test_real_apache_plain_list_gives_what_rsync_gives(
    client: Any, db: redis.Redis, rsync_url: str, apache: str
) -> None:
    listing = await scanner().list(apache + "plain/", 60, name="http")
    by_rsync, by_http = await rsync_and_http(client, db, rsync_url, listing)
    assert by_http == by_rsync  # every size and time from a HEAD


@ensure_deferred
async def test_max_scan_entries_bounds_a_walk(serve: Any) -> None:
    _, url = serve("json")
    values = HttpScan()
    bounded = HttpScanner(REACTOR, lambda: values, max_entries=lambda: 3)
    with pytest.raises(ScanError, match=r"^http error: more than 3 entries \(MaxScanEntries\)$"):
        await bounded.list(url, 60, name="http")
    assert len((await scanner().list(url, 60, name="http")).files) == len(TREE)
