"""Mirrors held down in memory (mirrorbits/helddown.py) and how the cache hands them out."""

from __future__ import annotations

from twisted.internet.task import Clock

from mirrorbits.cache import MISSING, MirrorCache
from mirrorbits.health.unrecorded import release_on_message
from mirrorbits.helddown import HeldDown
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.store.events import PROTO_HTTP, PROTO_HTTPS

BOTH = Mirror(id=1, name="one", http_url="one.example/", enabled=True, http_up=True,
              https_up=True)
OTHER = Mirror(id=2, name="two", http_url="http://two/", enabled=True, http_up=True)
INFO = FileInfo(path="/a.txt", size=6)


def test_a_held_protocol_is_down_with_its_reason_the_other_untouched() -> None:
    held = HeldDown()
    assert held.apply(BOTH) is BOTH
    assert held.hold(1, PROTO_HTTPS, "Unreachable (liveness)", 5.0)
    assert not held.hold(1, PROTO_HTTPS, "later", 6.0)  # the first reason and time kept
    seen = held.apply(BOTH)
    assert (seen.http_up, seen.https_up, seen.https_down_reason) == (
        True, False, "Unreachable (liveness)")
    assert held.apply(BOTH) is seen  # one copy per record
    assert held.apply(OTHER) is OTHER
    assert held.snapshot() == [[1, PROTO_HTTPS, "Unreachable (liveness)", 5.0]]


def test_released_by_protocol_by_mirror_or_by_a_message_about_it() -> None:
    held = HeldDown()
    held.hold(1, PROTO_HTTP, "down", 1.0)
    held.hold(1, PROTO_HTTPS, "down", 1.0)
    held.hold(2, PROTO_HTTP, "down", 1.0)
    assert held.release(1, PROTO_HTTP) and not held.release(1, PROTO_HTTP)
    release_on_message(held, "1")
    release_on_message(held, "not a number")
    assert held.snapshot() == [[2, PROTO_HTTP, "down", 1.0]]
    assert held.release_mirror(2) == [PROTO_HTTP]
    assert not held and held.apply(BOTH) is BOTH


def test_a_worker_follows_the_daemons_snapshot_and_skips_what_it_cannot_read() -> None:
    daemon, worker = HeldDown(), HeldDown()
    changes: list[frozenset[int]] = []
    worker.listeners.append(changes.append)
    daemon.hold(2, PROTO_HTTP, "Connection refused", 3.0)
    worker.follow([*daemon.snapshot(), ["x", 1, "", 0], [1, 2]])
    assert worker.snapshot() == daemon.snapshot() and len(changes) == 1
    worker.follow(daemon.snapshot())  # the same: no change, no listener call
    assert len(changes) == 1
    worker.follow([])
    assert not worker and changes[-1] == frozenset({2})  # its record is to be read again


def test_with_a_cache_a_released_mirror_stays_down_until_its_record_is_read() -> None:
    held = HeldDown(until_read=True)
    held.follow([[2, PROTO_HTTP, "Connection refused", 3.0]])
    held.follow([])  # the daemon released it: this process' record is from before
    assert held.snapshot() == [] and not held.apply(OTHER).http_up
    held.hold(2, PROTO_HTTP, "again", 4.0)
    held.release(2, PROTO_HTTP)
    held.read(1)  # another mirror's record
    assert not held.apply(OTHER).http_up
    held.read(2)
    assert held.apply(OTHER) is OTHER and not held


def test_the_cache_hands_held_mirrors_out_down_and_moves_its_version() -> None:
    def no_redis() -> None:
        raise AssertionError("Redis is not needed here")

    cache = MirrorCache(no_redis, Clock())
    cache.file_mirrors.put("/a.txt", (1, 2))
    for mirror in (BOTH, OTHER):
        cache.mirrors.put(mirror.id, mirror)
        cache.mirror_files.put((mirror.id, "/a.txt"), INFO)
    before = cache.version("/a.txt")
    assert cache.cached_candidates("/a.txt") == [(BOTH, INFO), (OTHER, INFO)]
    cache.held_down.hold(2, PROTO_HTTP, "Connection refused", 1.0)
    assert cache.version("/a.txt") != before  # memos of the selection are stale
    for candidates in (cache.cached_candidates("/a.txt"), cache.held_candidates("/a.txt")):
        assert candidates != []
        assert candidates[0] == (BOTH, INFO)
        assert not candidates[1][0].http_up
        assert candidates[1][0].http_down_reason == "Connection refused"
    cache.held_down.release(2, PROTO_HTTP)  # read again at the next request
    assert cache.cached_candidates("/a.txt") is MISSING
    assert not cache.held_candidates("/a.txt")[1][0].http_up  # Redis unreadable: still down
    cache._mirror_read(2, OTHER, current=True)  # what Redis says now
    assert cache.cached_candidates("/a.txt") == [(BOTH, INFO), (OTHER, INFO)]
    assert not cache.held_down
