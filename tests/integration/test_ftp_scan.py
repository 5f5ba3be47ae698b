"""FTP mirror scans against a real FTP server on loopback (spec §6.3).

The server is Twisted's own (``FTPFactory`` + ``FTPRealm``), run in the test process. It has
no ``MLSD`` and advertises ``MDTM``, so these tests take the ``LIST -a`` + ``MDTM`` path; the
MLSD parser is tested in ``tests/unit/test_ftp_listing.py``. Twisted's server follows symbolic
links (a link to a file is listed as that file), decodes commands as latin-1 (so its ``MDTM``
cannot find a non-ASCII name sent as UTF-8: that file's mtime is unknown, 0) and lists names as
UTF-8.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import attrs
import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.cred.checkers import AllowAnonymousAccess, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.ftp import (
    DATA_CNX_ALREADY_OPEN_START_XFR,
    FTP,
    TXFR_COMPLETE_OK,
    FTPFactory,
    FTPRealm,
    toSegments,
)
from twisted.python.failure import Failure

from mirrorbits.scan.ftp import RFC3659_WARNING, ftp_list
from mirrorbits.scan.rsync import ScanError, ScanListing
from mirrorbits.scan.rsync_listing import ListedFile
from mirrorbits.scan.walk import ScanAborted
from tests.servers import free_port

pytestmark = pytest.mark.integration

REACTOR: Any = global_reactor
S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000
PASSWORD = "s3cret"

F = TypeVar("F", bound=Callable[..., Any])


def ensure_deferred(test: F) -> F:
    return cast(F, pytest_twisted.ensureDeferred(test))


def async_yield_fixture(fixture: F) -> F:
    return cast(F, pytest_twisted.async_yield_fixture(fixture))


class LoopbackFTP(FTP):
    """Twisted's FTP server with its passive data ports on loopback only."""

    def getDTPPort(self, factory: Any, interface: str = "") -> Any:
        return super().getDTPPort(factory, interface="127.0.0.1")


# (path, size, mtime in s); a file symbolic link and a loop are added by ``make_tree``
TREE = [
    ("/README", 11, T0),
    ("/dir one/file two.txt", 2345, T0 + 60),
    ("/pub/sub/deep.bin", 100_000, T0 + 3600),
    ("/pub/sub/more/leaf", 0, T0 + 7),
    ("/pub/café.txt", 42, T0 + 86400),
    ("/-dash", 5, T0 + 9),
]


def make_tree(root: Path) -> None:
    for path, size, mtime in TREE:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x" * size)
        os.utime(target, (mtime, mtime))
    (root / "pub" / "link.txt").symlink_to("sub/deep.bin")
    (root / "pub" / "sub" / "back").symlink_to("..")  # a loop: /pub/sub/back == /pub


@attrs.define
class FtpServer:
    port: int
    root: Path

    def url(self, path: str = "/", userinfo: str = "") -> str:
        at = userinfo + "@" if userinfo else ""
        return f"ftp://{at}127.0.0.1:{self.port}{path}"


class MlsdFTP(LoopbackFTP):
    """The same server with ``MLSD`` (RFC 3659 facts, millisecond times), plus a ``cdir``
    line, a symbolic link entry, a garbage line and an over-long line in every listing."""

    FEATURES = [*FTP.FEATURES, "MLST type*;size*;modify*;"]

    def ftp_MLSD(self, path: str = "") -> Deferred[tuple[str]]:
        this: Any = self  # the server class is only partly typed
        segments = toSegments(this.workingDirectory, path)
        dtp: Any = self.dtpInstance

        def send(results: list[tuple[str, list[Any]]]) -> tuple[str]:
            self.reply(DATA_CNX_ALREADY_OPEN_START_XFR)
            dtp.sendLine(b"type=cdir;modify=20240101000000; .")
            dtp.sendLine(b"type=OS.unix=symlink;size=3; ghost")
            dtp.sendLine(b"this is not a facts line")
            dtp.sendLine(b"type=file;size=1; " + b"x" * 70_000)  # over-long: dropped
            for entry_name, (size, directory, modified) in results:
                ms = round(modified * 1000)
                stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(ms // 1000))
                kind = "dir" if directory else "file"
                facts = f"type={kind};size={size};modify={stamp}.{ms % 1000:03d}; "
                dtp.sendLine(facts.encode() + entry_name.encode("utf-8"))
            dtp.transport.loseConnection()
            return (TXFR_COMPLETE_OK,)

        listing: Deferred[Any] = this.shell.list(segments, ("size", "directory", "modified"))
        return listing.addCallback(send)


async def start_server(tmp_path: Path, protocol: type[FTP]) -> tuple[FtpServer, Any]:
    root = tmp_path / "anon"
    make_tree(root)
    homes = tmp_path / "homes"
    (homes / "mirror" / "only").mkdir(parents=True)
    private = homes / "mirror" / "only" / "private.iso"
    private.write_bytes(b"p" * 77)
    os.utime(private, (T0, T0))
    checker = InMemoryUsernamePasswordDatabaseDontUse()
    checker.addUser(cast(Any, "mirror"), cast(Any, PASSWORD))  # the server passes str
    portal = Portal(FTPRealm(str(root), str(homes)), [AllowAnonymousAccess(), checker])
    factory = FTPFactory(portal)
    factory.protocol = protocol
    port = REACTOR.listenTCP(0, factory, interface="127.0.0.1")
    return FtpServer(port=port.getHost().port, root=root), port


@async_yield_fixture
async def ftp_server(tmp_path: Path) -> AsyncIterator[FtpServer]:
    server, port = await start_server(tmp_path, LoopbackFTP)
    try:
        yield server
    finally:
        await port.stopListening()


@async_yield_fixture
async def mlsd_server(tmp_path: Path) -> AsyncIterator[FtpServer]:
    server, port = await start_server(tmp_path, MlsdFTP)
    try:
        yield server
    finally:
        await port.stopListening()


def by_path(listing: ScanListing) -> dict[str, ListedFile]:
    return {f.path: f for f in listing.files}


@ensure_deferred
async def test_listing_equals_the_tree(ftp_server: FtpServer) -> None:
    listing = await ftp_list(REACTOR, ftp_server.url("/"), 5.0, name="m1")
    expected = {path: ListedFile(path, size, mtime * S) for path, size, mtime in TREE}
    # Twisted's server cannot MDTM a non-ASCII name (it decodes commands as latin-1)
    expected["/pub/café.txt"] = ListedFile("/pub/café.txt", 42, 0)
    # the file link is served as its target; the directory loop is listed once
    expected["/pub/link.txt"] = ListedFile("/pub/link.txt", 100_000, (T0 + 3600) * S)
    assert by_path(listing) == expected
    assert len(listing.files) == len(expected)
    assert listing.precision_ns == S
    assert listing.skipped_lines == 0
    assert RFC3659_WARNING in listing.warnings
    assert any("directory loop at /pub/sub/back" in w for w in listing.warnings)


@ensure_deferred
async def test_mlsd_listing_equals_the_tree(mlsd_server: FtpServer) -> None:
    fine = mlsd_server.root / "pub" / "sub" / "more" / "leaf"
    os.utime(fine, ns=((T0 + 7) * S + 250_000_000,) * 2)
    listing = await ftp_list(REACTOR, mlsd_server.url("/"), 5.0, name="m2")
    expected = {path: ListedFile(path, size, mtime * S) for path, size, mtime in TREE}
    expected["/pub/link.txt"] = ListedFile("/pub/link.txt", 100_000, (T0 + 3600) * S)
    expected["/pub/sub/more/leaf"] = ListedFile("/pub/sub/more/leaf", 0, (T0 + 7) * S + 250 * MS)
    assert by_path(listing) == expected  # café.txt has its time: MLSD needs no MDTM
    assert len(listing.files) == len(expected)
    assert listing.precision_ns == MS
    assert listing.skipped_lines == 12  # a garbage and an over-long line per directory listed
    assert RFC3659_WARNING not in listing.warnings
    assert any("directory loop at /pub/sub/back" in w for w in listing.warnings)


@ensure_deferred
async def test_paths_are_relative_to_the_url_path(ftp_server: FtpServer) -> None:
    listing = await ftp_list(REACTOR, ftp_server.url("/dir one"), 5.0)
    assert listing.files == (ListedFile("/file two.txt", 2345, (T0 + 60) * S),)
    # from /pub/sub, the link back -> .. leads outside the scanned tree: it is followed once,
    # and the loop is seen when /pub/sub/back/sub lists like /pub/sub
    listing = await ftp_list(REACTOR, ftp_server.url("/pub/sub/"), 5.0)
    assert sorted(by_path(listing)) == [
        "/back/café.txt", "/back/link.txt", "/deep.bin", "/more/leaf",
    ]
    assert by_path(listing)["/deep.bin"] == ListedFile("/deep.bin", 100_000, (T0 + 3600) * S)
    assert any("directory loop at /back/sub" in w for w in listing.warnings)


@ensure_deferred
async def test_user_and_password_from_the_url(ftp_server: FtpServer) -> None:
    listing = await ftp_list(REACTOR, ftp_server.url("/", f"mirror:{PASSWORD}"), 5.0)
    assert listing.files == (ListedFile("/only/private.iso", 77, T0 * S),)


@ensure_deferred
async def test_wrong_password_is_a_clean_error(ftp_server: FtpServer) -> None:
    with pytest.raises(ScanError) as caught:
        await ftp_list(REACTOR, ftp_server.url("/", "mirror:wrong"), 5.0)
    message = str(caught.value)
    assert message.startswith("ftp error PASS: 530")
    assert "wrong" not in message


@ensure_deferred
async def test_missing_directory_is_a_clean_error(ftp_server: FtpServer) -> None:
    with pytest.raises(ScanError, match=r"^ftp error CWD /nowhere: 550"):
        await ftp_list(REACTOR, ftp_server.url("/nowhere/"), 5.0)


@ensure_deferred
async def test_bad_url() -> None:
    with pytest.raises(ScanError, match="http://x/ does not start with ftp://"):
        await ftp_list(REACTOR, "http://x/", 1.0)


@ensure_deferred
async def test_refused_port_is_a_clean_error() -> None:
    port = free_port()
    started = REACTOR.seconds()
    with pytest.raises(ScanError, match=f"^ftp error connecting to 127.0.0.1:{port}"):
        await ftp_list(REACTOR, f"ftp://127.0.0.1:{port}/", 1.0)
    assert REACTOR.seconds() - started < 1.5


class Silent(Protocol):
    """Accepts a connection and never answers; ``lost`` fires when the client closes."""

    def __init__(self, lost: Deferred[None]) -> None:
        self.lost = lost

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost.callback(None)


@async_yield_fixture
async def silent_server() -> AsyncIterator[tuple[int, list[Deferred[None]]]]:
    losses: list[Deferred[None]] = []

    def build() -> Silent:
        lost: Deferred[None] = Deferred()
        losses.append(lost)
        return Silent(lost)

    port = REACTOR.listenTCP(0, Factory.forProtocol(build), interface="127.0.0.1")
    try:
        yield port.getHost().port, losses
    finally:
        await port.stopListening()


@ensure_deferred
async def test_server_that_never_answers_times_out(
    silent_server: tuple[int, list[Deferred[None]]],
) -> None:
    port, losses = silent_server
    started = REACTOR.seconds()
    with pytest.raises(ScanError) as caught:
        await ftp_list(REACTOR, f"ftp://127.0.0.1:{port}/", 1.0)
    elapsed = REACTOR.seconds() - started
    assert str(caught.value) == (
        "ftp error waiting for the greeting: no complete listing within 1 s")
    assert 0.9 <= elapsed < 2.0
    assert len(losses) == 1
    await losses[0]  # the client closed its connection


@ensure_deferred
async def test_cancel_closes_the_connection(
    silent_server: tuple[int, list[Deferred[None]]],
) -> None:
    port, losses = silent_server
    scan = Deferred.fromCoroutine(ftp_list(REACTOR, f"ftp://127.0.0.1:{port}/", 30.0))
    for _ in range(200):  # until the server has the connection (bounded: 2 s)
        if losses:
            break
        await deferLater(0.01)
    assert len(losses) == 1
    scan.cancel()
    with pytest.raises(ScanAborted):
        await scan
    await losses[0]


def deferLater(seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater as later

    return later(REACTOR, seconds, lambda: None)
