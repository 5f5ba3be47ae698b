"""The paths the repository watch saw change (mirrorbits.scan.changing): pure timing, on a
``Clock``."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from mirrorbits.scan.changing import HOLD_AT_MOST, ChangingPaths


def fired(deferred: Deferred[None]) -> bool:
    done: list[object] = []
    deferred.addBoth(done.append)
    return bool(done)


def test_a_request_waits_until_the_batch_that_took_its_path_ends() -> None:
    changing = ChangingPaths(Clock())
    assert not changing
    changing.mark("/a")
    assert changing and "/a" in changing and "/b" not in changing
    waiting = changing.wait("/a")
    taken = changing.taken(["/a", "/b"])
    assert not fired(waiting)
    Deferred.fromCoroutine(changing.release(taken, ["/a"]))
    assert fired(waiting)
    assert not changing


def test_a_path_marked_again_during_its_batch_stays_marked() -> None:
    changing = ChangingPaths(Clock())
    changing.mark("/a")
    taken = changing.taken(["/a"])
    changing.mark("/a")  # changed again while the batch looked at it
    waiting = changing.wait("/a")
    Deferred.fromCoroutine(changing.release(taken, ["/a"]))
    assert "/a" in changing and not fired(waiting)
    Deferred.fromCoroutine(changing.release(changing.taken(["/a"]), ["/a"]))
    assert fired(waiting) and not changing


def test_the_cache_is_read_again_before_the_requests_go_on() -> None:
    changing = ChangingPaths(Clock())
    read: Deferred[None] = Deferred()
    asked: list[list[str]] = []

    async def reread(paths: list[str]) -> None:
        asked.append(paths)
        await read

    changing.reread = reread
    changing.mark("/a")
    waiting = changing.wait("/a")
    Deferred.fromCoroutine(changing.release(changing.taken(["/a"]), ["/a"]))
    assert asked == [["/a"]] and not fired(waiting)
    read.callback(None)
    assert fired(waiting)


def test_a_wait_is_bounded_and_a_stop_releases_everything() -> None:
    clock = Clock()
    changing = ChangingPaths(clock)
    changing.mark("/a")
    changing.mark("/b")
    first = changing.wait("/a")
    clock.advance(HOLD_AT_MOST - 0.1)
    assert not fired(first)
    clock.advance(0.1)
    assert fired(first)  # the batch never ended: answered from what is known
    second = changing.wait("/b")
    changing.release_all()
    assert fired(second) and not changing
    assert not clock.getDelayedCalls()
