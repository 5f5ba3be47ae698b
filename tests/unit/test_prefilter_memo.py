"""The client-independent part of the selection is reused until the cache changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from mirrorbits.cache import MirrorCache
from mirrorbits.config import Config, with_repository
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.selection import Secure, SelectionOptions
from mirrorbits.web.paths import LocalPath, NotFound
from mirrorbits.web.resource import WebContext

LOCAL = FileInfo(path="/a.txt", size=6, mod_time_ns=1_687_249_800_000_000_000)
UP = Mirror(id=1, name="one", http_url="http://one/", enabled=True, http_up=True)


def context() -> WebContext:
    def no_redis() -> None:
        raise AssertionError("Redis is not needed here")

    cache = MirrorCache(no_redis, Clock())
    return WebContext(config=Config, cache=cache, geo=None, stats=None, dedup=None,
                      download_log=None, clock=Clock(), server_header=b"x", get_client=no_redis)


def test_reused_while_nothing_changes_and_dropped_on_any_invalidation() -> None:
    ctx = context()
    opts = SelectionOptions()
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is None
    pre = ctx.remember_prefilter(LOCAL, [(UP, LOCAL)], Secure.UNDEFINED, opts,
                                 ctx.cache.version(LOCAL.path))
    assert pre.entries[0][2:] == ("http://one/", "", False)
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is pre
    assert ctx.cached_prefilter(LOCAL, Secure.WITH_TLS, opts) is None
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, SelectionOptions()) is None
    ctx.cache.on_mirror_update("1")
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is None


def test_a_result_computed_across_an_invalidation_is_never_reused() -> None:
    ctx = context()
    opts = SelectionOptions()
    before = ctx.cache.version(LOCAL.path)
    ctx.cache.on_mirror_file_update("1 /a.txt")  # arrives while Redis was being read
    ctx.remember_prefilter(LOCAL, [(UP, LOCAL)], Secure.UNDEFINED, opts, before)
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is None
    for invalidate in (lambda: ctx.cache.on_file_update("/a.txt"), ctx.cache.clear):
        ctx.remember_prefilter(LOCAL, [(UP, LOCAL)], Secure.UNDEFINED, opts,
                               ctx.cache.version(LOCAL.path))
        invalidate()
        assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is None


def test_messages_about_other_files_keep_the_memo() -> None:
    """A mirror scan publishes one message per changed file: other files' memos survive."""
    ctx = context()
    opts = SelectionOptions()
    pre = ctx.remember_prefilter(LOCAL, [(UP, LOCAL)], Secure.UNDEFINED, opts,
                                 ctx.cache.version(LOCAL.path))
    for index in range(1000):
        ctx.cache.on_mirror_file_update(f"1 /other/{index}.iso")
        ctx.cache.on_file_update(f"/other/{index}.iso")
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is pre
    ctx.cache.on_mirror_file_update("1 /a.txt")
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is None


def test_per_file_versions_stay_bounded_without_reviving_old_memos() -> None:
    ctx = context()
    ctx.cache = MirrorCache(ctx.cache.get_client, Clock(), path_buckets=4)
    opts = SelectionOptions()
    ctx.remember_prefilter(LOCAL, [(UP, LOCAL)], Secure.UNDEFINED, opts,
                           ctx.cache.version(LOCAL.path))
    ctx.cache.on_file_update("/a.txt")
    for index in range(25):  # every counter moved several times: none goes back
        ctx.cache.on_file_update(f"/other/{index}")
    assert len(ctx.cache._path_counts) == 4
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is None


def test_a_storm_naming_more_paths_than_ever_counted_keeps_the_other_memos() -> None:
    """150,000 files not held are named (a scan of a large mirror): the memos of the others
    stay (the per-path counters restarted every 100,000 paths, each time making every
    memo of the worker stale: all rebuilt, as after the fill)."""
    ctx = context()
    opts = SelectionOptions()
    pre = ctx.remember_prefilter(LOCAL, [(UP, LOCAL)], Secure.UNDEFINED, opts,
                                 ctx.cache.version(LOCAL.path))
    shared = ctx.cache.path_bucket(LOCAL.path)
    named = 0
    for index in range(150_000):
        path = f"/pool/{index}.bin"
        if ctx.cache.path_bucket(path) != shared:  # a path sharing its counter would move it
            ctx.cache.on_file_update(path)
            ctx.cache.on_mirror_file_update(f"1 {path}")
            named += 1
    assert named > 149_000
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is pre
    ctx.cache.on_file_update(LOCAL.path)
    assert ctx.cached_prefilter(LOCAL, Secure.UNDEFINED, opts) is None


def test_warm_memos_builds_each_whole_file_once_up_to_the_bound() -> None:
    ctx = context()
    ctx.resize_memos(8)  # two memos
    cache = ctx.cache
    cache.mirrors.put(1, UP)
    for name in ("a", "b", "c"):
        info = FileInfo(path=f"/{name}.txt", size=6, mod_time_ns=LOCAL.mod_time_ns)
        cache.files.put(info.path, (info, 0.0))
        cache.file_mirrors.put(info.path, (1,))
        cache.mirror_files.put((1, info.path), info)
    cache.files.put("/unknown.txt", (None, 10.0))
    cache.files.put("/partial.txt", (FileInfo(path="/partial.txt", mod_time_ns=1), 0.0))
    cache.file_mirrors.put("/partial.txt", (1,))  # its record on mirror 1 is not cached
    config = Config()
    ctx.config = lambda: config
    opts = ctx.selection_options(config)
    built = Deferred.fromCoroutine(ctx.warm_memos(slice_size=1))
    ctx.clock.advance(0)  # type: ignore[attr-defined]
    assert built.result == 2  # type: ignore[attr-defined]
    a, b = (cache.cached_file(f"/{n}.txt") for n in "ab")
    assert isinstance(a, FileInfo) and isinstance(b, FileInfo)
    assert ctx.cached_memo(a, Secure.UNDEFINED, opts) is not None
    assert ctx.cached_memo(b, Secure.UNDEFINED, opts) is not None


def test_warm_memos_resolves_each_warmed_file_on_disk_before_its_first_request(
        tmp_path: Path) -> None:
    """The start-up warm-up leaves a file's first requests nothing to read from the disk:
    its path is resolved (and remembered for the memo's time to live) with its memo."""
    ctx = context()
    cache = ctx.cache
    cache.mirrors.put(1, UP)
    for name in ("a", "b"):
        (tmp_path / f"{name}.txt").write_bytes(b"abcdef")
        info = FileInfo(path=f"/{name}.txt", size=6, mod_time_ns=LOCAL.mod_time_ns)
        cache.files.put(info.path, (info, 0.0))
        cache.file_mirrors.put(info.path, (1,))
        cache.mirror_files.put((1, info.path), info)
    config = with_repository(Config(), str(tmp_path))
    ctx.config = lambda: config
    built = Deferred.fromCoroutine(ctx.warm_memos(slice_size=1))
    ctx.clock.advance(0)  # type: ignore[attr-defined]
    assert built.result == 2  # type: ignore[attr-defined]
    for name in ("a", "b"):  # gone from the disk: only a remembered answer can say "a file"
        (tmp_path / f"{name}.txt").unlink()
        assert ctx.paths.evaluate(config.repository, f"/{name}.txt") == LocalPath(
            f"/{name}.txt", True)
    ctx.clock.advance(ctx.paths.ttl)  # type: ignore[attr-defined]
    with pytest.raises(NotFound):  # the time to live is that of any other answer
        ctx.paths.evaluate(config.repository, "/a.txt")
