"""The paths the repository watch saw change (mirrorbits.scan.changing): pure timing, on a
``Clock``."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from mirrorbits.scan.changing import HOLD_AT_MOST, ChangingPaths
from mirrorbits.workers.wire import changing_line, parse_changing


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


def test_a_worker_follows_the_daemons_marks_and_releases_through_the_pipe_lines() -> None:
    """What the daemon's watch marks and releases reaches a worker as command lines (any
    path: a newline, bytes that are not UTF-8), and the worker holds and releases alike,
    reading the published paths in its own cache first."""
    daemon, worker = ChangingPaths(Clock()), ChangingPaths(Clock())
    odd = "/n\nl \udcff.bin"
    reread: list[list[str]] = []

    async def read_again(paths: list[str]) -> None:
        reread.append(paths)

    worker.reread = read_again
    lines: list[bytes] = []
    daemon.forward = lambda kind, argument: lines.append(changing_line(kind, argument))

    def deliver() -> None:
        for line in lines:
            assert line.endswith(b"\n") and line.count(b"\n") == 1
            told = parse_changing(line[:-1])
            assert told is not None
            worker.follow(*told)
        lines.clear()

    daemon.mark(odd)
    deliver()
    assert odd in worker
    waiting = worker.wait(odd)
    Deferred.fromCoroutine(daemon.release(daemon.taken([odd]), [odd]))
    deliver()
    assert fired(waiting) and not worker and reread == [[odd]]
    daemon.mark("/a")
    daemon.release_all()
    deliver()
    assert not worker
    assert parse_changing(b"counts") is None and parse_changing(b"changing {") is None


def test_a_failed_re_read_still_releases_its_paths() -> None:
    """Redis gone during the re-read: the path is released all the same, so its later
    requests are not each held until the bound."""
    changing = ChangingPaths(Clock())

    async def fails(paths: list[str]) -> None:
        raise ConnectionError("Redis is gone")

    changing.reread = fails
    changing.mark("/a")
    waiting = changing.wait("/a")
    released = Deferred.fromCoroutine(changing.release(changing.taken(["/a"]), ["/a"]))
    released.addErrback(lambda _: None)
    assert fired(waiting) and "/a" not in changing
