"""The request-path cache against a real Redis, invalidated by real pub/sub messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock

from mirrorbits.cache import MISSING, MirrorCache
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.store import keys, outage
from mirrorbits.store.client import RedisClient
from mirrorbits.store.errors import DatabaseNotReady
from mirrorbits.store.pubsub import PubSubService
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import eventually, started_service, within
from tests.servers import RedisServer

MOD_TIME = "2023-06-20 08:30:00 +0000 UTC"


def seed(db: redis.Redis) -> None:
    db.hset("FILE_/a.txt", mapping={"size": "6", "modTime": MOD_TIME, "sha256": "ab"})
    db.sadd("FILEMIRRORS_/a.txt", 2, 1)
    for mirror_id, name in ((1, "one"), (2, "two")):
        db.hset(f"MIRROR_{mirror_id}", mapping={"ID": str(mirror_id), "name": name,
                                                "http": f"http://{name}/", "enabled": "1"})
        db.hset(f"FILEINFO_{mirror_id}_/a.txt", mapping={"size": "6", "modTime": MOD_TIME})


def add_files(db: redis.Redis, mirror_id: int, *names: str) -> None:
    """``/<name>.txt`` for each name: indexed with 1 byte and held by ``mirror_id``."""
    for name in names:
        db.hset(f"FILE_/{name}.txt", mapping={"size": "1", "modTime": MOD_TIME})
        db.sadd(f"FILEMIRRORS_/{name}.txt", mirror_id)
        db.hset(f"FILEINFO_{mirror_id}_/{name}.txt", mapping={"size": "1", "modTime": MOD_TIME})


@pytest.fixture
def cache(service: RedisService, redis_db: redis.Redis) -> MirrorCache:
    """A cache (on a ``Clock``) on the test Redis, which holds :func:`seed`'s records."""
    seed(redis_db)
    return MirrorCache(service.client, Clock())


@pytest_twisted.ensureDeferred
async def test_reads_through_then_answers_from_memory(
    cache: MirrorCache, redis_db: redis.Redis
) -> None:
    assert cache.cached_candidates("/a.txt") is MISSING
    info = await cache.file_info("/a.txt")
    assert info is not None and info.size == 6 and info.sha256 == "ab"
    pairs = await cache.candidates("/a.txt")
    assert [m.name for m, _ in pairs] == ["one", "two"]
    assert all(f is not None and f.size == 6 for _, f in pairs)
    redis_db.hset("MIRROR_1", "name", "renamed")
    assert [m.name for m, _ in cache.cached_candidates("/a.txt")] == ["one", "two"]
    cache.on_mirror_update("1")
    assert cache.cached_candidates("/a.txt") is MISSING
    assert [m.name for m, _ in await cache.candidates("/a.txt")] == ["renamed", "two"]
    redis_db.srem("FILEMIRRORS_/a.txt", 2)
    cache.on_mirror_file_update("2 /a.txt")
    assert [m.name for m, _ in await cache.candidates("/a.txt")] == ["renamed"]
    cache.on_mirror_file_update("garbage")
    cache.on_mirror_update("not-a-number")


@pytest_twisted.ensureDeferred
async def test_unknown_file_is_forgotten_after_the_negative_ttl(
    service: RedisService, redis_db: redis.Redis
) -> None:
    clock = Clock()
    cache = MirrorCache(service.client, clock, negative_ttl=2.0)
    assert await cache.file_info("/new.txt") is None
    assert cache.cached_file("/new.txt") is None
    redis_db.hset("FILE_/new.txt", mapping={"size": "1", "modTime": MOD_TIME})
    clock.advance(1.0)
    assert cache.cached_file("/new.txt") is None
    clock.advance(1.5)
    assert cache.cached_file("/new.txt") is MISSING
    info = await cache.file_info("/new.txt")
    assert info is not None and info.size == 1


@pytest_twisted.ensureDeferred
async def test_pubsub_messages_invalidate_and_reconnection_clears(
    redis_server: RedisServer, cache: MirrorCache, redis_db: redis.Redis
) -> None:
    pubsub = PubSubService(redis_server.address, "", reactor)
    pubsub.on_message(keys.CHANNEL_FILE_UPDATE, cache.on_file_update)
    pubsub.on_message(keys.CHANNEL_MIRROR_UPDATE, cache.on_mirror_update)
    pubsub.on_reconnect(cache.clear)
    pubsub.startService()
    try:
        await pubsub.whenReady()
        await cache.file_info("/a.txt")
        await cache.candidates("/a.txt")
        redis_db.hset("FILE_/a.txt", "size", "7")
        redis_db.publish(keys.CHANNEL_FILE_UPDATE, "/a.txt")

        def refreshed() -> bool:
            info = cache.cached_file("/a.txt")
            assert info is not MISSING  # read again in the background, never dropped
            return info is not None and info.size == 7

        await eventually(refreshed)
        redis_db.publish(keys.CHANNEL_MIRROR_UPDATE, "2")
        await eventually(lambda: cache.cached_candidates("/a.txt") is MISSING)
        await cache.candidates("/a.txt")
        assert cache.cached_candidates("/a.txt") is not MISSING
        redis_db.client_kill_filter(_type="pubsub")
        await eventually(lambda: len(cache.mirrors) == 0, seconds=15)
    finally:
        await pubsub.stopService()


@pytest_twisted.ensureDeferred
async def test_warm_fills_the_most_downloaded_files_first_within_the_bound(
    cache: MirrorCache, service: RedisService, redis_db: redis.Redis
) -> None:
    add_files(redis_db, 1, "b", "c", "d")
    redis_db.sadd("FILES", "/a.txt", "/b.txt", "/c.txt", "/d.txt")
    redis_db.hset("STATS_FILE", mapping={"/c.txt": "50", "/d.txt": "7", "/gone.txt": "99"})
    redis_db.hset("MIRRORS", mapping={"1": "one", "2": "two"})  # after the DB version check
    cache.resize(2)
    assert await cache.warm(batch=1) == 1
    # /gone.txt is not indexed and held by no mirror: left to a request to read (the fill
    # remembers no "no mirror"), /c.txt the most downloaded of the others
    assert cache.cached_file("/gone.txt") is MISSING
    assert [m.name for m, _ in cache.cached_candidates("/c.txt")] == ["one"]
    assert cache.cached_file("/d.txt") is MISSING and cache.cached_file("/a.txt") is MISSING
    cache.resize(10)
    assert await cache.warm() == 4  # /c.txt read again (in place), three more
    pairs = cache.cached_candidates("/a.txt")
    assert [m.name for m, _ in pairs] == ["one", "two"]
    assert all(f is not None and f.size == 6 for _, f in pairs)
    assert cache.cached_file("/d.txt") is not MISSING
    # what the fill put is what reading through puts
    through = MirrorCache(service.client, Clock())
    for path in ("/a.txt", "/b.txt", "/c.txt", "/d.txt"):
        assert await through.file_info(path) == cache.cached_file(path)
        assert await through.candidates(path) == cache.cached_candidates(path)


@pytest_twisted.ensureDeferred
async def test_misses_are_read_in_a_few_batches_each_path_once(
    cache: MirrorCache, service: RedisService, redis_db: redis.Redis
) -> None:
    add_files(redis_db, 2, "b", "c")
    redis_db.config_resetstat()
    wanted = ["/a.txt", "/b.txt", "/c.txt", "/b.txt", "/c.txt", "/a.txt", "/none.txt"]
    found = await gatherResults([Deferred.fromCoroutine(cache.candidates(path))
                                 for path in wanted])
    # the first three misses are read at once (MISS_READS), the repeated paths wait for
    # those reads, /none.txt for a free one
    stats = redis_db.info("commandstats")
    assert stats["cmdstat_eval"]["calls"] == 4
    # only the scripts' reads (FILE_ + FILEINFO_: 3 for /a.txt, 2 for /b and /c, 1 for
    # /none.txt): nothing read through, nothing read twice
    assert stats["cmdstat_hmget"]["calls"] == 8
    assert [[m.name for m, _ in pairs] for pairs in found] == [
        ["one", "two"], ["two"], ["two"], ["two"], ["two"], ["one", "two"], []]
    through = MirrorCache(service.client, Clock(), batch_misses=False)
    for path, pairs in zip(wanted, found, strict=True):
        assert await through.candidates(path) == pairs
    assert await cache.file_info("/none.txt") is None


@pytest_twisted.ensureDeferred
async def test_a_file_message_refreshes_in_the_background_and_moves_only_what_changed(
    cache: MirrorCache, redis_db: redis.Redis
) -> None:
    before = await cache.candidates("/a.txt")
    await cache.file_info("/a.txt")
    version = cache.version("/a.txt")
    cache.on_mirror_file_update("1 /a.txt")  # nothing changed in Redis
    assert cache.cached_candidates("/a.txt") == before  # answers meanwhile
    assert await cache.candidates("/a.txt") == before  # an awaited read waits for it
    assert cache.version("/a.txt") == version  # memos kept
    redis_db.srem("FILEMIRRORS_/a.txt", 1)
    cache.on_mirror_file_update("1 /a.txt")
    cache.on_file_update("/a.txt")  # again while being read: read once more after
    assert [m.name for m, _ in await cache.candidates("/a.txt")] == ["two"]
    assert cache.version("/a.txt") != version
    assert cache.mirror_files.peek((1, "/a.txt")) is MISSING


@pytest_twisted.ensureDeferred
async def test_a_mirror_message_during_a_refresh_does_not_lose_the_files_change(
    cache: MirrorCache, redis_db: redis.Redis
) -> None:
    """A mirror's message (a health check, a scan's start) changes every path's version; the
    refresh of a file read meanwhile must still land, or the file keeps its old mirrors."""
    await cache.candidates("/a.txt")
    await cache.file_info("/a.txt")
    redis_db.srem("FILEMIRRORS_/a.txt", 1)
    redis_db.delete("FILEINFO_1_/a.txt")
    cache.on_mirror_file_update("1 /a.txt")  # the refresh's read is in flight...
    cache.on_mirror_update("2")  # ...when another mirror changes
    assert [m.name for m, _ in await cache.candidates("/a.txt")] == ["two"]
    assert [m.name for m, _ in cache.cached_candidates("/a.txt")] == ["two"]


@pytest_twisted.ensureDeferred
async def test_a_storms_re_reads_are_paced_and_coalesced(
    service: RedisService, redis_db: redis.Redis
) -> None:
    """One re-read in flight, started at most every ``refresh_interval``: the messages that
    arrive meanwhile (a path named twice once) go in one script, and what it reads lands."""
    seed(redis_db)
    add_files(redis_db, 2, "b", "c")
    clock = Clock()
    cache = MirrorCache(service.client, clock, refresh_interval=0.5)
    for path in ("/a.txt", "/b.txt", "/c.txt"):
        await cache.candidates(path)
        await cache.file_info(path)
    redis_db.config_resetstat()
    for name in ("a", "b", "c"):
        redis_db.hset(f"FILE_/{name}.txt", "size", "9")
    cache.on_file_update("/a.txt")  # read at once
    for path in ("/b.txt", "/c.txt", "/b.txt"):
        cache.on_file_update(path)  # wait for the interval, together
    info = await cache.file_info("/a.txt")
    assert info is not None and info.size == 9
    assert redis_db.info("commandstats")["cmdstat_eval"]["calls"] == 1
    held = cache.cached_file("/b.txt")
    assert isinstance(held, FileInfo) and held.size == 1  # answered from meanwhile
    clock.advance(0.5)
    for path in ("/b.txt", "/c.txt"):
        info = await cache.file_info(path)
        assert info is not None and info.size == 9
    stats = redis_db.info("commandstats")
    assert stats["cmdstat_eval"]["calls"] == 2  # /b and /c in one script
    assert stats["cmdstat_hmget"]["calls"] == 3  # each FILE_ once


@pytest_twisted.ensureDeferred
async def test_a_re_read_lands_when_other_paths_move_its_counter(
    service: RedisService, redis_db: redis.Redis
) -> None:
    """Messages about other paths sharing the file's counter arrive while its re-read is in
    flight: what it read is still kept (the file would keep its old records until its next
    message)."""
    seed(redis_db)
    cache = MirrorCache(service.client, Clock(), path_buckets=1)  # every path shares it
    await cache.candidates("/a.txt")
    await cache.file_info("/a.txt")
    redis_db.hset("FILE_/a.txt", "size", "9")
    cache.on_file_update("/a.txt")  # its re-read in flight...
    for path in ("/x", "/y", "/z"):
        cache.on_file_update(path)  # ...when files not held move its counter
    info = await cache.file_info("/a.txt")
    assert info is not None and info.size == 9
    held = cache.cached_file("/a.txt")
    assert isinstance(held, FileInfo) and held.size == 9


@pytest_twisted.ensureDeferred
async def test_a_miss_read_is_kept_while_a_storm_names_many_other_paths(
    cache: MirrorCache, redis_db: redis.Redis
) -> None:
    """150,000 other paths are named while a miss is read (a large scan): the read is kept
    (the per-path counters restarted at 100,000 paths, which discarded every read in flight:
    each read again)."""
    redis_db.config_resetstat()
    reading = Deferred.fromCoroutine(cache.candidates("/a.txt"))  # its script in flight...
    shared = cache.path_bucket("/a.txt")
    for index in range(150_000):
        path = f"/pool/{index}.bin"
        if cache.path_bucket(path) != shared:  # ...while files not held are named
            cache.on_file_update(path)
    assert [m.name for m, _ in await reading] == ["one", "two"]
    assert redis_db.info("commandstats")["cmdstat_eval"]["calls"] == 1  # read once, kept


@pytest_twisted.ensureDeferred
async def test_a_message_re_reads_only_the_records_it_names(
    cache: MirrorCache, redis_db: redis.Redis
) -> None:
    """An invalidation storm costs a record or two per message, not the file's every copy;
    a mirror list naming a copy the cache has not read yet makes the whole file read."""
    for mirror_id in (3, 4):
        redis_db.hset(f"MIRROR_{mirror_id}", mapping={"ID": str(mirror_id),
                                                      "name": f"m{mirror_id}",
                                                      "http": f"http://m{mirror_id}/"})
    await cache.file_info("/a.txt")
    await cache.candidates("/a.txt")
    redis_db.config_resetstat()
    redis_db.hset("FILEINFO_2_/a.txt", "size", "7")
    cache.on_mirror_file_update("2 /a.txt")
    pairs = await cache.candidates("/a.txt")
    assert [(m.id, f.size if f else None) for m, f in pairs] == [(1, 6), (2, 7)]
    stats = redis_db.info("commandstats")
    assert stats["cmdstat_hmget"]["calls"] == 1  # FILEINFO_2 alone
    assert "cmdstat_hgetall" not in stats  # no mirror re-read either

    redis_db.hset("FILE_/a.txt", "size", "7")
    redis_db.config_resetstat()
    cache.on_file_update("/a.txt")
    info = await cache.file_info("/a.txt")
    assert info is not None and info.size == 7
    stats = redis_db.info("commandstats")
    assert stats["cmdstat_hmget"]["calls"] == 1 and "cmdstat_smembers" not in stats

    redis_db.sadd("FILEMIRRORS_/a.txt", 3, 4)
    for mirror_id in (3, 4):
        redis_db.hset(f"FILEINFO_{mirror_id}_/a.txt",
                      mapping={"size": "6", "modTime": MOD_TIME})
    cache.on_mirror_file_update("3 /a.txt")  # mirror 4's message is not there yet
    pairs = await cache.candidates("/a.txt")
    assert [m.id for m, _ in pairs] == [1, 2, 3, 4]
    redis_db.srem("FILEMIRRORS_/a.txt", 1, 3)
    cache.on_mirror_file_update("1 /a.txt")
    cache.on_mirror_file_update("3 /a.txt")
    assert [m.id for m, _ in await cache.candidates("/a.txt")] == [2, 4]
    assert cache.mirror_files.peek((1, "/a.txt")) is MISSING


@pytest_twisted.ensureDeferred
async def test_after_a_reconnection_the_fill_replaces_the_records_in_place(
    cache: MirrorCache, redis_db: redis.Redis
) -> None:
    """Messages may have been lost while pub/sub was away: the files are read again while
    requests are answered from what was known, rather than every request missing."""
    add_files(redis_db, 1, "b")
    redis_db.sadd("FILES", "/a.txt", "/b.txt")
    redis_db.hset("MIRRORS", mapping={"1": "one", "2": "two"})
    assert await cache.warm() == 2
    # while pub/sub was away: /a.txt left mirror 1, /b.txt left the index
    redis_db.srem("FILEMIRRORS_/a.txt", 1)
    redis_db.srem("FILES", "/b.txt")
    cache.suspect_all()
    assert isinstance(cache.cached_file("/a.txt"), FileInfo)  # still answered
    assert cache.file_mirrors.peek("/a.txt") == (1, 2)
    assert await cache.warm() == 1
    assert [m.name for m, _ in await cache.candidates("/a.txt")] == ["two"]
    assert cache.cached_file("/b.txt") is MISSING  # not reached: read on demand


@pytest_twisted.ensureDeferred
async def test_re_reads_of_odd_paths_land_in_one_script(
    service: RedisService, redis_db: redis.Redis
) -> None:
    """The paths a re-read asks go in one argument (each ended by a NUL) and the rows come
    back in one string: paths with spaces, separators of the reply or any UTF-8 read right;
    a path with a NUL, which no file has, is dropped (read by its next request) instead."""
    seed(redis_db)
    odd = ["/a b.txt", "/é\u00e8/ü.iso", "/x\x1dy\x1ez\x1f\x01.bin", "/n\nl", "/a\x00b"]
    for path in odd:
        redis_db.hset(f"FILE_{path}", mapping={"size": "1", "modTime": MOD_TIME})
        redis_db.sadd(f"FILEMIRRORS_{path}", 2)
        redis_db.hset(f"FILEINFO_2_{path}", mapping={"size": "1", "modTime": MOD_TIME})
    cache = MirrorCache(service.client, Clock(), refresh_interval=0.5)
    for path in ("/a.txt", *odd):
        await cache.candidates(path)
        await cache.file_info(path)
    cache.on_file_update("/a.txt")  # the first re-read, at once; the others wait for it
    await cache.file_info("/a.txt")
    redis_db.config_resetstat()
    for size, path in enumerate(odd, 10):
        redis_db.hset(f"FILE_{path}", "size", str(size))
        redis_db.hset(f"FILEINFO_2_{path}", "size", str(size))
        cache.on_file_update(path)
        cache.on_mirror_file_update(f"2 {path}")
    assert cache.cached_file("/a\x00b") is MISSING  # dropped at once
    cache.clock.advance(0.5)  # type: ignore[attr-defined]
    for size, path in enumerate(odd, 10):
        info = await cache.file_info(path)
        assert info is not None and info.size == size, path
        pairs = await cache.candidates(path)
        assert [(m.id, f.size if f else None) for m, f in pairs] == [(2, size)], path
    stats = redis_db.info("commandstats")
    assert stats["cmdstat_eval"]["calls"] == 1 + 1  # the re-read; the NUL path's miss


@pytest_twisted.ensureDeferred
async def test_a_re_read_redis_cannot_answer_keeps_what_the_cache_held(
    service: RedisService, redis_db: redis.Redis
) -> None:
    """A scan's message just before Redis went down: the file's re-read fails, and its
    requests are answered from the records held (a 503 each for the whole outage, when the
    records were dropped); the reconnection's fill re-reads them in place."""
    seed(redis_db)
    down = False

    def client() -> RedisClient:
        if down:  # what the real service raises once it saw the link lost
            raise DatabaseNotReady("Redis is down")
        return service.client()

    cache = MirrorCache(client, Clock())
    before = await cache.candidates("/a.txt")
    await cache.file_info("/a.txt")
    down = True
    cache.on_mirror_file_update("1 /a.txt")
    cache.on_file_update("/a.txt")
    await eventually(lambda: not cache._refreshing)
    assert cache.cached_candidates("/a.txt") == before
    assert isinstance(cache.cached_file("/a.txt"), FileInfo)


@pytest_twisted.ensureDeferred
async def test_while_redis_is_down_the_mirrors_put_aside_by_a_lost_pubsub_still_serve(
    cache: MirrorCache
) -> None:
    """Redis going down also drops pub/sub, which makes the cache read every mirror again:
    until Redis answers, the records it held serve, a mirror whose message came before the
    loss included (every download of a file whose memo was rebuilt got a 503 for the whole
    outage)."""
    await cache.candidates("/a.txt")
    cache.suspect_all()  # pub/sub lost
    assert sorted(m.name for m, _ in held(cache)) == ["one", "two"]
    cache.on_mirror_update("1")  # a message read before the loss
    assert sorted(m.name for m, _ in held(cache)) == ["one", "two"]
    cache.clear()
    assert cache.held_candidates("/a.txt") is MISSING


@pytest_twisted.ensureDeferred
async def test_mirrors_a_message_made_the_cache_forget_serve_until_redis_answers(
    tmp_path: Path,
) -> None:
    """A routine message (a health check, a scan) made the cache forget every mirror of a
    file and Redis stopped before a request read them again: the records held before the
    message serve while Redis cannot answer (before: left out, every download of the file
    got a 503 for the whole outage); once a read succeeds, what it said replaces them."""
    server = RedisServer(workdir=tmp_path / "redis")
    server.start()
    db = server.client()
    service: RedisService | None = None
    try:
        seed(db)
        service = await started_service(server)
        cache = MirrorCache(service.client, Clock())
        await cache.candidates("/a.txt")
        cache.on_mirror_update("1")
        cache.on_mirror_update("2")
        assert cache.cached_candidates("/a.txt") is MISSING
        server.stop()
        await eventually(lambda: service is not None and not service.ready)
        with pytest.raises(Exception) as raised:  # whichever Redis failure
            await cache.candidates("/a.txt")
        assert outage.redis_cause(raised.value) is not None
        assert [m.name for m, _ in held(cache)] == ["one", "two"]
        server.start()  # empty: seeded again, mirror 1 renamed, mirror 2 gone
        seed(db)
        db.hset("MIRROR_1", "name", "renamed")
        db.delete("MIRROR_2")
        await within(service.whenReady(), 15)
        assert [m.name for m, _ in await cache.candidates("/a.txt")] == ["renamed"]
        cache.on_mirror_update("1")
        server.stop()
        assert [m.name for m, _ in held(cache)] == ["renamed"]  # never "one", nor "two"
    finally:
        if service is not None:
            await within(service.stopService())
        server.stop()
        db.close()


def held(cache: MirrorCache) -> list[tuple[Mirror, FileInfo | None]]:
    entries = cache.held_candidates("/a.txt")
    assert entries is not MISSING
    return entries
