"""Scheduling decisions of the mirror scanner (spec §6.1), on a Clock with fake listers.

The Redis side of a scan (``scan_mirror``) is replaced by a recorder that only calls the
listing function: these tests are about which scans start, when, and in which order.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from mirrorbits.config import Config
from mirrorbits.model import PROTOCOL_FTP, PROTOCOL_HTTP, PROTOCOL_RSYNC, Mirror
from mirrorbits.progress import Progress
from mirrorbits.scan.commit import ScanResult
from mirrorbits.scan.rsync import ScanError, ScanListing
from mirrorbits.scan.scheduler import TICK, MirrorScanner, ftp_lister, is_due, scan_plan
from mirrorbits.scan.walk import ScanAborted
from mirrorbits.store.errors import DatabaseNotReady, ScanInProgress
from tests.logcapture import captured_log

NOW = 1_800_000_000.0
INTERVAL = 30


def mirror(mid: int, **values: Any) -> Mirror:
    defaults: dict[str, Any] = {"name": f"m{mid}", "http_url": "http://m.example/",
                                "rsync_url": f"rsync://m{mid}.example/x/", "enabled": True}
    defaults.update(values)
    # a scan at last_sync succeeded, unless said otherwise
    defaults.setdefault("last_successful_sync", defaults.get("last_sync"))
    return Mirror(id=mid, **defaults)



class _IndexedRepository:
    """The one command the monitor sends itself: ``EXISTS FILES``."""

    def __init__(self, indexed: bool) -> None:
        self._indexed = indexed

    def exists(self, key: str) -> Deferred[int]:
        return succeed(int(self._indexed))

class Store:
    """The part of MirrorStore the scheduler reads."""

    def __init__(self, mirrors: list[Mirror]) -> None:
        self.mirrors = mirrors
        self.fail_next = False

    async def all_mirrors(self) -> list[Mirror]:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        return list(self.mirrors)

    async def get_mirror(self, mirror_id: int) -> Mirror:
        return next(m for m in self.mirrors if m.id == mirror_id)


class Harness:
    """A scanner whose listings are Deferreds the test fires."""

    def __init__(self, mirrors: list[Mirror], concurrent: int = 5,
                 handles: Callable[[int], bool] = lambda _mirror_id: True) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = Store(mirrors)
        self.config = attrs.evolve(Config(), concurrent_sync=concurrent, scan_interval=INTERVAL)
        self.calls: list[tuple[str, str]] = []  # (protocol, url)
        self.pending: dict[str, Deferred[ScanListing]] = {}
        self.locked: set[int] = set()
        self.ready = True
        self.indexed = True  # FILES exists (the local repository was scanned)
        self.listing_errors: dict[str, Exception] = {}
        self.fix_tz: list[bool] = []  # fix_timezone_offsets of each scan
        self.scanner = MirrorScanner(
            lambda: self.config, self.client, self.store, self.clock,  # type: ignore[arg-type]
            listers={PROTOCOL_RSYNC: self.lister("rsync"), PROTOCOL_FTP: self.lister("ftp"),
                     PROTOCOL_HTTP: self.lister("http")},
            commit=self.commit, handles=handles,
        )

    def client(self) -> object:
        if not self.ready:
            raise DatabaseNotReady("database not ready")
        return _IndexedRepository(self.indexed)

    def lister(self, proto: str) -> Callable[[str, float, str, Progress], Awaitable[ScanListing]]:
        async def listing(url: str, timeout: float, name: str, progress: Progress) -> ScanListing:
            self.calls.append((proto, url))
            if url in self.listing_errors:
                raise self.listing_errors[url]
            waiting: Deferred[ScanListing] = Deferred()
            self.pending[url] = waiting
            return await waiting

        return listing

    async def commit(
        self, client: Any, clock: Any, mirror_id: int, proto: int,
        list_files: Callable[[str], Awaitable[ScanListing]],
        *, fix_timezone_offsets: bool = False, progress: Progress | None = None,
    ) -> ScanResult:
        self.fix_tz.append(fix_timezone_offsets)
        if mirror_id in self.locked:
            raise ScanInProgress("scan already in progress")
        listing = await list_files(f"m{mirror_id}")
        return ScanResult(files=len(listing.files), known=0, removed=0)

    def finish(self, url: str) -> None:
        self.pending.pop(url).callback(ScanListing(files=()))

    def run(self, seconds: int) -> None:
        """Let the monitor tick for ``seconds``."""
        for _ in range(seconds):
            self.clock.advance(TICK)


def test_is_due() -> None:
    assert is_due(mirror(1, last_sync=None), NOW, INTERVAL)
    assert not is_due(mirror(1, last_sync=int(NOW) - INTERVAL * 60), NOW, INTERVAL)
    assert is_due(mirror(1, last_sync=int(NOW) - INTERVAL * 60 - 1), NOW, INTERVAL)
    assert not is_due(mirror(1, last_sync=None, enabled=False), NOW, INTERVAL)
    recent = mirror(1, last_sync=int(NOW) - 60)
    assert is_due(recent, NOW, INTERVAL, retry_at=NOW)  # a failed scan's retry
    assert not is_due(recent, NOW, INTERVAL, retry_at=NOW + 1)
    assert not is_due(mirror(1, last_sync=0, enabled=False), NOW, INTERVAL, retry_at=NOW)


RSYNC_1 = "rsync://m1.example/x/"


def test_a_failed_monitor_scan_is_retried_sooner_with_a_backoff_until_it_succeeds() -> None:
    h = Harness([mirror(1)])
    h.config = attrs.evolve(h.config, scan_interval=5)
    h.listing_errors[RSYNC_1] = ScanError("rsync: connection refused")
    with captured_log("mirrorbits.scan") as said:
        h.scanner.startService()
        # written as the scan started
        h.store.mirrors[0] = mirror(1, last_sync=int(NOW), last_successful_sync=None)
        h.run(59)
        assert len(h.calls) == 1
        h.run(1)
        assert len(h.calls) == 2  # 1 min after the failure, not ScanInterval (5 min)
        h.run(119)
        assert len(h.calls) == 2
        h.run(1)
        assert len(h.calls) == 3  # then 2 min
        assert said == ["[m1] Scan failed; retried in 1 min",
                        "[m1] Scan failed 2 times in a row; retried in 2 min",
                        "[m1] Scan failed 3 times in a row; retried in 4 min"]
        del h.listing_errors[RSYNC_1]
        h.run(240)
        assert len(h.calls) == 4
        h.finish(RSYNC_1)
        h.store.mirrors[0] = mirror(1, last_sync=int(h.clock.seconds()))
        h.run(5 * 60)  # a success: back to ScanInterval
        assert len(h.calls) == 4
        h.run(1)
        assert len(h.calls) == 5
    h.scanner.stopService()


def test_cli_scans_do_not_count_as_failures_but_their_success_resets() -> None:
    h = Harness([mirror(1, last_sync=int(NOW))])
    h.listing_errors[RSYNC_1] = ScanError("rsync: connection refused")
    h.scanner.startService()
    manual = Deferred.fromCoroutine(h.scanner.scan(1, False, "ALL", None))
    manual.addErrback(lambda failure: failure.trap(ScanError))
    h.run(600)
    assert h.calls == [("rsync", RSYNC_1)]  # no retry of the CLI's scan

    h.store.mirrors[0] = mirror(1, last_sync=int(NOW) - INTERVAL * 60)
    h.run(1)  # due: the monitor's scan fails, retried in 1 min...
    assert len(h.calls) == 2
    h.store.mirrors[0] = mirror(1, last_sync=int(h.clock.seconds()))
    del h.listing_errors[RSYNC_1]
    manual = Deferred.fromCoroutine(h.scanner.scan(1, False, "ALL", None))
    h.finish(RSYNC_1)  # ...unless a scan succeeds meanwhile
    assert manual.called
    h.run(120)
    assert len(h.calls) == 3
    h.scanner.stopService()


def test_a_mirror_another_node_scans_now_is_not_retried_here() -> None:
    mine = {1}
    h = Harness([mirror(1)], handles=mine.__contains__)
    h.listing_errors[RSYNC_1] = ScanError("rsync: connection refused")
    h.scanner.startService()
    h.store.mirrors[0] = mirror(1, last_sync=int(NOW))
    mine.clear()  # the cluster changed
    h.run(30)
    mine.add(1)  # and back: its failure was forgotten meanwhile
    h.run(120)
    assert h.calls == [("rsync", RSYNC_1)]
    h.scanner.stopService()


def test_scan_plan_orders_and_forces_protocols() -> None:
    both = mirror(1, ftp_url="ftp://m1.example/x/")
    assert scan_plan(both, "all") == [(PROTOCOL_RSYNC, "rsync://m1.example/x/"),
                                      (PROTOCOL_FTP, "ftp://m1.example/x/")]
    assert scan_plan(both, "FTP") == [(PROTOCOL_FTP, "ftp://m1.example/x/")]
    assert scan_plan(both, "rsync") == [(PROTOCOL_RSYNC, "rsync://m1.example/x/")]
    assert scan_plan(mirror(1), "ftp") == []
    # neither rsync nor FTP: the HTTP index pages (the reference had no URL to scan)
    assert scan_plan(mirror(1, rsync_url=""), "ALL") == [(PROTOCOL_HTTP, "http://m.example/")]
    assert scan_plan(mirror(1, rsync_url="", http_url=""), "ALL") == []
    assert scan_plan(both, "http") == [(PROTOCOL_HTTP, "http://m.example/")]
    assert scan_plan(mirror(1, rsync_url=""), "rsync") == []
    assert scan_plan(mirror(1, http_url="m.example/a b", https_up=True), "HTTP") == [
        (PROTOCOL_HTTP, "https://m.example/a%20b/")]
    with pytest.raises(ValueError):
        scan_plan(both, "gopher")


def test_only_due_enabled_mirrors_are_scanned_and_never_twice() -> None:
    h = Harness([
        mirror(1, last_sync=None),
        mirror(2, last_sync=int(NOW) - 60),
        mirror(3, last_sync=int(NOW) - INTERVAL * 60 - 1),
        mirror(4, enabled=False),
    ])
    h.scanner.startService()
    assert h.calls == [("rsync", "rsync://m1.example/x/"), ("rsync", "rsync://m3.example/x/")]
    assert h.scanner.scanning == {1, 3}
    h.clock.advance(1)
    h.clock.advance(1)
    assert len(h.calls) == 2  # still running: not started again
    h.finish("rsync://m1.example/x/")
    assert h.scanner.scanning == {3}
    h.scanner.stopService()


def test_no_mirror_is_scanned_before_the_repository_is_indexed() -> None:
    h = Harness([mirror(1, last_sync=None)])
    h.indexed = False  # a scan now would leave HANDLEDFILES_1 empty: never health-checked
    h.scanner.startService()
    h.clock.advance(1)
    assert h.calls == []
    h.indexed = True
    h.clock.advance(1)
    assert h.calls == [("rsync", "rsync://m1.example/x/")]
    h.scanner.stopService()


def test_the_monitor_only_scans_the_mirrors_this_node_handles() -> None:
    mine = {2, 3}
    h = Harness([mirror(i, last_sync=None) for i in range(1, 5)], handles=mine.__contains__)
    h.scanner.startService()
    assert h.calls == [("rsync", "rsync://m2.example/x/"), ("rsync", "rsync://m3.example/x/")]
    mine.add(4)  # the cluster changed: another node left
    h.clock.advance(1)
    assert h.calls[-1] == ("rsync", "rsync://m4.example/x/")
    assert h.scanner.scanning == {2, 3, 4}
    h.scanner.stopService()


def test_concurrency_is_bounded_and_freed_workers_take_the_next_mirror() -> None:
    h = Harness([mirror(i) for i in range(1, 5)], concurrent=2)
    h.scanner.startService()
    assert h.scanner.scanning == {1, 2}
    h.clock.advance(1)
    assert h.scanner.scanning == {1, 2}
    h.finish("rsync://m2.example/x/")
    h.store.mirrors[1] = mirror(2, last_sync=int(NOW))
    assert h.scanner.scanning == {1}
    h.clock.advance(1)
    assert h.scanner.scanning == {1, 3}
    h.scanner.stopService()


def test_locked_mirror_is_skipped_and_retried_next_tick() -> None:
    h = Harness([mirror(1)])
    h.locked.add(1)
    h.scanner.startService()
    assert h.calls == []
    assert h.scanner.scanning == frozenset()
    h.locked.clear()
    h.clock.advance(1)
    assert h.calls == [("rsync", "rsync://m1.example/x/")]
    h.scanner.stopService()


def test_fix_timezone_offsets_is_read_from_the_live_config_for_each_scan() -> None:
    h = Harness([mirror(1), mirror(2)], concurrent=1)
    h.scanner.startService()
    h.config = attrs.evolve(h.config, fix_timezone_offsets=True)
    h.finish("rsync://m1.example/x/")
    h.store.mirrors[0] = mirror(1, last_sync=int(NOW))
    h.clock.advance(1)
    assert h.scanner.scanning == {2}
    assert h.fix_tz == [False, True]
    h.scanner.stopService()


def test_rsync_failure_falls_back_to_ftp() -> None:
    h = Harness([mirror(1, ftp_url="ftp://m1.example/x/")])
    h.listing_errors["rsync://m1.example/x/"] = ScanError("rsync: exit status 5")
    h.scanner.startService()
    assert h.calls == [("rsync", "rsync://m1.example/x/"), ("ftp", "ftp://m1.example/x/")]
    h.finish("ftp://m1.example/x/")
    assert h.scanner.scanning == frozenset()
    h.scanner.stopService()


def test_abort_does_not_fall_back() -> None:
    h = Harness([mirror(1, ftp_url="ftp://m1.example/x/")])
    h.listing_errors["rsync://m1.example/x/"] = ScanAborted()
    h.scanner.startService()
    assert h.calls == [("rsync", "rsync://m1.example/x/")]
    h.scanner.stopService()


def test_http_only_mirror_is_scanned_by_the_monitor() -> None:
    h = Harness([mirror(1, rsync_url="", http_url="m1.example/pub")])
    h.scanner.startService()
    assert h.calls == [("http", "http://m1.example/pub/")]
    h.finish("http://m1.example/pub/")
    assert h.scanner.scanning == frozenset()
    h.scanner.stopService()


def test_no_url_starts_no_listing() -> None:
    h = Harness([mirror(1, rsync_url="", http_url="")])
    h.scanner.startService()
    assert h.calls == []
    assert h.scanner.scanning == frozenset()
    h.scanner.stopService()


def test_loop_survives_errors_and_waits_for_redis() -> None:
    h = Harness([mirror(1)])
    h.ready = False
    h.scanner.startService()
    h.clock.advance(1)
    assert h.calls == []
    h.ready = True
    h.store.fail_next = True
    h.clock.advance(1)
    assert h.calls == []
    h.clock.advance(1)
    assert h.calls == [("rsync", "rsync://m1.example/x/")]
    h.scanner.stopService()


def test_stop_cancels_running_scans() -> None:
    h = Harness([mirror(1, ftp_url="ftp://m1.example/x/")])
    h.scanner.startService()
    waiting = h.pending["rsync://m1.example/x/"]
    stopped = h.scanner.stopService()
    assert waiting.called  # cancelled
    assert h.scanner.scanning == frozenset()
    assert h.calls == [("rsync", "rsync://m1.example/x/")]  # no FTP fallback on abort
    assert stopped.called
    h.clock.advance(5)
    assert len(h.calls) == 1


def test_ftp_lister_without_the_ftp_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mirrorbits.scan.ftp", None)
    clock = Clock()
    listing = Deferred.fromCoroutine(_call(ftp_lister(clock)("ftp://x/", 1.0, "m",
                                                             Progress(clock))))
    errors: list[BaseException] = []

    def failed(failure: Failure) -> None:
        assert failure.value is not None
        errors.append(failure.value)

    listing.addErrback(failed)
    assert [str(e) for e in errors] == ["ftp scanning not available"]
    assert isinstance(errors[0], ScanError)


async def _call(awaitable: Awaitable[ScanListing]) -> ScanListing:
    return await awaitable


def test_trace_url_and_parse() -> None:
    from mirrorbits.scan.trace import parse_trace, trace_url

    assert trace_url(mirror(1, http_url="http://m.example/debian/"), "/trace") == (
        "http://m.example/debian/trace")
    assert trace_url(mirror(1, http_url="m.example/x", https_up=True), "trace") == (
        "https://m.example/x/trace")
    assert trace_url(mirror(1, http_url="m.example/x"), "t") == "http://m.example/x/t"
    assert trace_url(mirror(1, http_url="http://m.example/d\u00e9p\u00f4t/my%20x/"),
                     "trace file") == "http://m.example/d%C3%A9p%C3%B4t/my%20x/trace%20file"
    assert parse_trace(b"  1795571680 extra\nmore") == 1795571680
    assert parse_trace(b"-5") == -5
    for bad in (b"", b"<html>", b"12abc", b"\xd9\xa1\xd9\xa2", b"99999999999999999999"):
        with pytest.raises(ValueError, match="is not a valid timestamp"):
            parse_trace(bad)
