"""Hostile rsync and FTP mirrors: real ``rsync --daemon`` and ``rsync`` client, a hostile FTP
server process (``tests/hostile_ftp.py``), real redis-server. Each listing is bounded in entries,
silence and time; an abandoned scan keeps the mirror's known files and logs one error."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock

from mirrorbits.scan.bounds import DEFAULT_BOUNDS, ScanBounds
from mirrorbits.scan.commit import scan_mirror
from mirrorbits.scan.ftp import ftp_list
from mirrorbits.scan.rsync import ScanError, ScanListing, rsync_list
from mirrorbits.store import events, keys
from mirrorbits.store.events import SCANNER_RSYNC
from tests.integration.conftest import StartHostile
from tests.integration.store_support import captured_log, eventually
from tests.integration.test_rsync_scan import (
    REACTOR,
    SCAN_TIME,
    client,
    ensure_deferred,
    entries,
    fake_rsync,
)
from tests.servers import rsync_daemon

pytestmark = pytest.mark.integration

__all__ = ["client"]  # fixture

#: Bytes a hostile server may get out before an abandoned listing's connection is closed:
#: what the client read (its cap) plus the kernel's socket buffers (a few MiB).
SENT_BOUND = 64 * 1024 * 1024
CONTROL_NAMES = ["esc\x1b[31mred.txt", "line\nbreak.txt", "bell\x07.txt", "del\x7f.txt"]


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(SCAN_TIME)
    return clock


def start_rsyncd(tmp_path: Path, tree: Path, host: str = "127.0.0.51") -> Iterator[str]:
    binary = shutil.which("rsync")
    if binary is None:
        pytest.skip("rsync is not installed")
    with rsync_daemon(tmp_path, {"m": tree}, host) as server:
        yield server.url("m")


@pytest.fixture
def hostile_tree(tmp_path: Path) -> Iterator[str]:
    """A module with control characters in names and symbolic link loops, on a real daemon."""
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    for name in ["ok.txt", "tab\there.txt", *CONTROL_NAMES]:
        (tree / name).write_bytes(b"x")
    (tree / "a" / "b" / "deep.txt").write_bytes(b"yy")
    (tree / "loop").symlink_to(".")
    (tree / "a" / "b" / "up").symlink_to("../..")
    (tree / "a" / "self").symlink_to("self")
    yield from start_rsyncd(tmp_path, tree)


@pytest.fixture
def big_tree(tmp_path: Path) -> Iterator[str]:
    tree = tmp_path / "big"
    tree.mkdir()
    for number in range(40):
        (tree / f"f{number:02}.bin").write_bytes(b"z")
    yield from start_rsyncd(tmp_path, tree, "127.0.0.52")


def register_mirror(redis_db: redis.Redis, local: list[str]) -> None:
    """Mirror 1 ``m1``, and the local repository's ``FILES``."""
    redis_db.hset(keys.MIRRORS, "1", "m1")
    redis_db.hset(keys.mirror(1), mapping={"ID": "1", "name": "m1"})
    redis_db.sadd(keys.FILES, *local)


def lister(url: str, bounds: ScanBounds = DEFAULT_BOUNDS) -> Any:
    async def listing(name: str) -> ScanListing:
        return await rsync_list(REACTOR, url, 30, name=name, bounds=bounds)
    return listing


@ensure_deferred
async def test_rsync_names_with_control_characters_are_kept_only_if_local_and_links_not_followed(
    hostile_tree: str, client: Any, redis_db: redis.Redis, clock: Clock,
) -> None:
    """Symbolic links are listed, not followed: the loops are harmless. A name with a control
    character is kept only if the local repository has it (here the one with a line feed)."""
    good = ["/a/b/deep.txt", "/ok.txt", "/tab\there.txt"]
    register_mirror(redis_db, [*good, "/line\nbreak.txt"])
    with captured_log("mirrorbits.scan") as lines:
        result = await scan_mirror(client, clock, 1, SCANNER_RSYNC, lister(hostile_tree))
    assert result.files == 4
    assert redis_db.smembers(keys.mirror_files(1)) == {*good, "/line\nbreak.txt"}
    assert ("[m1] 3 names with control characters skipped (not in the local repository), such "
            "as '/bell\\x07.txt'") in lines
    assert not [key for key in redis_db.keys("*") if "\x1b" in key or "\x7f" in key]


@ensure_deferred
async def test_rsync_listing_past_max_entries_is_abandoned_and_known_files_kept(
    big_tree: str, client: Any, redis_db: redis.Redis, clock: Clock,
) -> None:
    register_mirror(redis_db, [f"/f{number:02}.bin" for number in range(40)])
    await scan_mirror(client, clock, 1, SCANNER_RSYNC, lister(big_tree))
    known = {key: redis_db.dump(key) for key in redis_db.keys("*") if "FILE" in key}
    assert len(redis_db.smembers(keys.mirror_files(1))) == 40
    clock.advance(60)
    with captured_log("mirrorbits.scan") as lines, pytest.raises(ScanError) as raised:
        await scan_mirror(client, clock, 1, SCANNER_RSYNC,
                          lister(big_tree, ScanBounds(max_entries=30)))
    message = "rsync: more than 30 entries listed (MaxScanEntries), scan abandoned"
    assert str(raised.value) == message
    assert lines[-1] == f"[m1] {message}"
    assert {key: redis_db.dump(key) for key in redis_db.keys("*") if "FILE" in key} == known
    logged = entries(redis_db)
    assert [e["Type"] for e in logged] == [events.TYPE_SCAN_STARTED, events.TYPE_SCAN_COMPLETED,
                                           events.TYPE_SCAN_STARTED, events.TYPE_ERROR]
    assert logged[-1] == {"Type": events.TYPE_ERROR, "MirrorID": 1, "Err": message}


@ensure_deferred
async def test_an_endless_rsync_listing_stops_at_max_entries(tmp_path: Path) -> None:
    line = "-rw-r--r--          1 2023/06/06 08:30:00 same"
    program = fake_rsync(tmp_path, f"{shutil.which('yes')} -- '{line}'")
    started = REACTOR.seconds()
    with pytest.raises(ScanError, match="more than 200000 entries"):
        await rsync_list(REACTOR, "rsync://127.0.0.1:9/m/", 60, executable=program,
                         bounds=ScanBounds(max_entries=200_000))
    assert REACTOR.seconds() - started < 30


class _Greets(Protocol):
    """An rsync daemon that greets, then says nothing more."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"@RSYNCD: 31.0\n")


@ensure_deferred
async def test_an_rsync_daemon_stalling_mid_listing_is_abandoned() -> None:
    port = REACTOR.listenTCP(0, Factory.forProtocol(_Greets), interface="127.0.0.53")
    try:
        started = REACTOR.seconds()
        with pytest.raises(ScanError) as raised:
            await rsync_list(REACTOR, f"rsync://127.0.0.53:{port.getHost().port}/m/", 60,
                             bounds=ScanBounds(stall=1.5))
        assert str(raised.value) == "rsync: nothing received for 1.5 s, scan abandoned"
        assert REACTOR.seconds() - started < 10  # TERM at once, KILL 5 s later at worst
    finally:
        await port.stopListening()


@ensure_deferred
async def test_an_endless_ftp_listing_stops_at_max_entries(
        hostile: StartHostile) -> None:
    server = hostile("ftp", "endless", "127.0.0.54")
    started = REACTOR.seconds()
    with pytest.raises(ScanError) as raised:
        await ftp_list(REACTOR, server.url + "/", 60, name="m1",
                       bounds=ScanBounds(max_entries=200_000))
    assert str(raised.value) == (
        "ftp: more than 200000 entries listed (MaxScanEntries), scan abandoned")
    assert REACTOR.seconds() - started < 30
    await eventually(lambda: len(server.sent()) == 1, 20)
    assert server.sent()[0] < SENT_BOUND


@ensure_deferred
async def test_an_ftp_listing_that_stalls_is_abandoned(
        hostile: StartHostile) -> None:
    server = hostile("ftp", "stall", "127.0.0.55")
    started = REACTOR.seconds()
    with pytest.raises(ScanError) as raised:
        await ftp_list(REACTOR, server.url + "/", 60, name="m1", bounds=ScanBounds(stall=1.0))
    assert str(raised.value) == "ftp error MLSD: nothing received for 1 s, scan abandoned"
    assert REACTOR.seconds() - started < 5


@ensure_deferred
async def test_ftp_names_too_long_are_skipped(
        hostile: StartHostile) -> None:
    server = hostile("ftp", "names", "127.0.0.56")
    with captured_log("mirrorbits.scan") as lines:
        listing = await ftp_list(REACTOR, server.url + "/", 30, name="m1")
    assert [f.path for f in listing.files] == [
        "/ok.txt", "/esc\x1b[31mred.txt", "/bell\x07.txt", "/c1\x9b.txt", "/tab\there.txt",
        "/last.txt"]  # the control characters are dealt with at commit (see above)
    assert listing.skipped_lines == 1
    assert "[m1] 1 ftp listing lines skipped: 1 name longer than 4096 bytes" in lines


@ensure_deferred
async def test_an_ftp_reply_without_end_is_abandoned(
        hostile: StartHostile) -> None:
    server = hostile("ftp", "chatty", "127.0.0.63")
    started = REACTOR.seconds()
    with pytest.raises(ScanError) as raised:
        await ftp_list(REACTOR, server.url + "/", 60, name="m1")
    assert str(raised.value) == (
        "ftp error: a reply longer than 10000 lines, scan abandoned")
    assert REACTOR.seconds() - started < 10
    await eventually(lambda: len(server.sent()) == 1, 20)
    assert server.sent()[0] < SENT_BOUND
