"""MirrorStore against a real redis-server: the stored bytes, publications and event logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import redis
import txredisapi
from attrs import evolve
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import Clock

from mirrorbits.model import Mirror
from mirrorbits.store import events, keys
from mirrorbits.store.errors import DatabaseNotReady, MirrorNotFound, NameTaken, StoreError
from mirrorbits.store.eventlog import MAX_ENTRIES
from mirrorbits.store.mirrors import MirrorStore, mirror_ids
from mirrorbits.store.records import mirror_from_hash
from mirrorbits.store.redis import RedisService
from mirrorbits.store.scans import record_scan_failure
from tests.integration.store_support import received, subscribe, within

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "redis_after_add.json"
NOW = 1795571680.5  # 2026-11-25 01:54:40.5 UTC
NOW_TEXT = "2026-11-25T01:54:40.5Z"
UPDATE = keys.CHANNEL_MIRROR_UPDATE


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(NOW)
    return clock


def logged(db: redis.Redis, mirror_id: int) -> list[dict[str, Any]]:
    return [json.loads(item) for item in db.lrange(keys.mirror_logs(mirror_id), 0, -1)]


@pytest_twisted.ensureDeferred
async def test_adding_the_reference_mirrors_writes_the_same_keys(
    store: MirrorStore, redis_db: redis.Redis
) -> None:
    expected = json.loads(FIXTURE.read_text())["keys"]
    updates = subscribe(redis_db, UPDATE)
    for mirror_id in range(1, 10):
        stored = expected[f"MIRROR_{mirror_id}"]["value"]
        saved = await store.add_mirror(evolve(mirror_from_hash(stored), id=0))
        assert saved.id == mirror_id
    for mirror_id in range(1, 10):
        key = f"MIRROR_{mirror_id}"
        assert redis_db.hgetall(key) == expected[key]["value"], key
        [entry] = logged(redis_db, mirror_id)
        [reference] = [json.loads(item) for item in expected[keys.mirror_logs(mirror_id)]["value"]]
        assert entry == {**reference, "Timestamp": NOW_TEXT}
        assert list(redis_db.lrange(keys.mirror_logs(mirror_id), 0, -1)) == [
            f'{{"Type":2,"MirrorID":{mirror_id},"Timestamp":"{NOW_TEXT}"}}'
        ]
    assert redis_db.hgetall(keys.MIRRORS) == expected["MIRRORS"]["value"]
    assert redis_db.get(keys.LAST_MID) == expected["LAST_MID"]["value"] == "9"
    assert redis_db.get(keys.DB_VERSION) == "2"
    assert received(updates) == [(UPDATE, str(i)) for i in range(1, 10)]


@pytest_twisted.ensureDeferred
async def test_add_normalises_and_creates_disabled_mirrors(
    store: MirrorStore, redis_db: redis.Redis
) -> None:
    saved = await store.add_mirror(Mirror(
        name="m1", http_url="https://m1.example/pub", rsync_url="rsync://m1.example/pub",
        ftp_url="", continent_code="eu", country_codes="fr, be", excluded_country_codes="de",
        enabled=True, latitude=48.8582, longitude=2.3387, score=-5, asnum=65000))
    assert (saved.id, saved.enabled, saved.http_url) == (1, False, "https://m1.example/pub/")
    stored = redis_db.hgetall("MIRROR_1")
    assert stored["http"] == "https://m1.example/pub/"
    assert stored["rsync"] == "rsync://m1.example/pub/"
    assert (stored["continentCode"], stored["countryCodes"]) == ("EU", "FR BE")
    assert stored["excludedCountryCodes"] == "DE"
    assert (stored["enabled"], stored["httpUp"], stored["latitude"]) == ("0", "0", "48.8582")
    assert (stored["score"], stored["asnum"]) == ("-5", "65000")
    assert "httpsUp" not in stored
    assert len(stored) == 25
    assert await store.get_mirror(1) == saved


@pytest_twisted.ensureDeferred
async def test_add_rejects_an_id_and_a_taken_name(
    store: MirrorStore, redis_db: redis.Redis
) -> None:
    with pytest.raises(StoreError, match=r"^unexpected ID$"):
        await store.add_mirror(Mirror(id=4, name="m", http_url="http://m/"))
    await store.add_mirror(Mirror(name="m", http_url="http://m/"))
    with pytest.raises(NameTaken, match=r"^name already taken$"):
        await store.add_mirror(Mirror(name="m", http_url="http://other/"))
    assert redis_db.get(keys.LAST_MID) == "1"
    assert redis_db.hgetall(keys.MIRRORS) == {"1": "m"}
    assert redis_db.hget("MIRROR_1", "http") == "http://m/"


@pytest_twisted.ensureDeferred
async def test_concurrent_adds_of_one_name_create_one_mirror(
    store: MirrorStore, redis_db: redis.Redis
) -> None:
    results = await within(DeferredList([
        Deferred.fromCoroutine(store.add_mirror(Mirror(name="same", http_url=f"http://{n}/")))
        for n in range(4)
    ], consumeErrors=True))
    successes = [value for ok, value in results if ok]
    failures = [value.value for ok, value in results if not ok]
    assert len(successes) == 1
    assert len(failures) == 3
    assert all(isinstance(error, NameTaken) for error in failures)
    assert redis_db.hvals(keys.MIRRORS) == ["same"]


@pytest_twisted.ensureDeferred
async def test_update_rewrites_the_record_and_logs_an_edit(
    store: MirrorStore, redis_db: redis.Redis, clock: Clock
) -> None:
    first = await store.add_mirror(Mirror(name="a", http_url="http://a/"))
    await store.add_mirror(Mirror(name="b", http_url="http://b/"))
    redis_db.hset("MIRROR_1", mapping={"httpUp": "1", "lastSync": "1700000000"})
    updates = subscribe(redis_db, UPDATE)
    clock.advance(10)
    saved = await store.update_mirror(evolve(first, name="a2", http_url="https://a2",
                                             enabled=True, comment="moved"))
    assert saved.http_url == "https://a2/"
    stored = redis_db.hgetall("MIRROR_1")
    assert (stored["name"], stored["http"], stored["enabled"]) == ("a2", "https://a2/", "1")
    assert (stored["comment"], stored["httpUp"], stored["httpsUp"]) == ("moved", "0", "0")
    assert stored["lastSync"] == "1700000000"  # fields outside the 24 are kept
    assert redis_db.hgetall(keys.MIRRORS) == {"1": "a2", "2": "b"}
    assert [e["Type"] for e in logged(redis_db, 1)] == [events.TYPE_ADDED, events.TYPE_EDITED]
    assert logged(redis_db, 1)[1]["Timestamp"] == "2026-11-25T01:54:50.5Z"
    assert received(updates) == [(UPDATE, "1")]

    await store.update_mirror(evolve(saved, comment="same name is fine"))
    with pytest.raises(NameTaken):
        await store.update_mirror(evolve(saved, name="b"))
    with pytest.raises(MirrorNotFound):
        await store.update_mirror(evolve(saved, id=7, name="c"))
    assert redis_db.exists("MIRROR_7") == 0
    assert redis_db.hgetall(keys.MIRRORS) == {"1": "a2", "2": "b"}


@pytest_twisted.ensureDeferred
async def test_match_all_and_get(store: MirrorStore, redis_db: redis.Redis) -> None:
    for name in ("mirror2", "mirror", "Other-MIRROR"):
        await store.add_mirror(Mirror(name=name, http_url=f"http://{name}/"))
    assert await store.match("mirror") == [(2, "mirror")]
    assert await store.match("irr") == [(3, "Other-MIRROR"), (2, "mirror"), (1, "mirror2")]
    assert await store.match("nope") == []
    redis_db.hset(keys.MIRRORS, "9", "ghost")  # listed, but its hash is gone
    mirrors = await store.all_mirrors()
    assert [(m.id, m.name) for m in mirrors] == [(1, "mirror2"), (2, "mirror"), (3, "Other-MIRROR")]
    assert (await store.get_mirror(2)).http_url == "http://mirror/"
    with pytest.raises(MirrorNotFound):
        await store.get_mirror(9)


@pytest_twisted.ensureDeferred
async def test_mirror_ids_are_the_decimal_fields_of_the_mirrors_hash(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis
) -> None:
    for name in ("one", "two", "three"):
        await store.add_mirror(Mirror(name=name, http_url=f"http://{name}/"))
    redis_db.hset(keys.MIRRORS, mapping={"12": "listed", "x": "x", "": "e", "+4": "p",
                                         "-5": "n", "2.5": "f", "\u00b2": "superscript"})
    assert await mirror_ids(service.client()) == (1, 2, 3, 12)
    assert [m.id for m in await store.all_mirrors()] == [1, 2, 3]  # 12 has no record
    assert sorted(mid for mid, _ in await store.match("")) == [1, 2, 3, 12]
    redis_db.delete(keys.MIRRORS)
    assert await mirror_ids(service.client()) == ()


@pytest_twisted.ensureDeferred
async def test_mirror_ids_refuse_a_mirrors_key_of_another_type(
    service: RedisService, redis_db: redis.Redis
) -> None:
    redis_db.sadd(keys.MIRRORS, "1")
    with pytest.raises(txredisapi.ResponseError, match="WRONGTYPE"):
        await mirror_ids(service.client())


@pytest_twisted.ensureDeferred
async def test_enable_and_disable(store: MirrorStore, redis_db: redis.Redis) -> None:
    await store.add_mirror(Mirror(name="m", http_url="http://m/"))
    updates = subscribe(redis_db, UPDATE)
    await store.set_enabled(1, True)
    assert redis_db.hget("MIRROR_1", "enabled") == "1"
    await store.set_enabled(1, False)
    assert redis_db.hget("MIRROR_1", "enabled") == "0"
    assert [e["Type"] for e in logged(redis_db, 1)] == [2, 4, 5]
    assert received(updates) == [(UPDATE, "1"), (UPDATE, "1")]
    with pytest.raises(MirrorNotFound):
        await store.set_enabled(5, True)
    assert redis_db.exists("MIRROR_5") == 0


@pytest_twisted.ensureDeferred
async def test_state_changes_set_state_since_and_log_only_on_transitions(
    store: MirrorStore, redis_db: redis.Redis, clock: Clock
) -> None:
    await store.add_mirror(Mirror(name="m", http_url="m.example/"))  # both protocols
    updates = subscribe(redis_db, UPDATE)
    assert await store.set_state(1, events.PROTO_HTTP, True, "") is True
    stored = redis_db.hgetall("MIRROR_1")
    assert (stored["httpUp"], stored["httpDownReason"]) == ("1", "")
    assert stored["stateSince"] == "1795571680"
    clock.advance(60)
    assert await store.set_state(1, events.PROTO_HTTP, True, "") is False
    assert redis_db.hget("MIRROR_1", "stateSince") == "1795571680"
    # httpsUp is missing: that counts as down, so "down" is no transition.
    assert await store.set_state(1, events.PROTO_HTTPS, False, "Unreachable") is False
    assert redis_db.hget("MIRROR_1", "httpsDownReason") == "Unreachable"
    assert redis_db.hget("MIRROR_1", "httpsUp") == "0"
    clock.advance(60)
    assert await store.set_state(1, events.PROTO_HTTP, False, "Got status code 500") is True
    stored = redis_db.hgetall("MIRROR_1")
    assert (stored["httpUp"], stored["httpDownReason"]) == ("0", "Got status code 500")
    assert stored["stateSince"] == "1795571800"
    assert logged(redis_db, 1)[1:] == [
        {"Type": 6, "MirrorID": 1, "Timestamp": NOW_TEXT, "Proto": 1, "Up": True, "Reason": ""},
        {"Type": 6, "MirrorID": 1, "Timestamp": "2026-11-25T01:56:40.5Z", "Proto": 1,
         "Up": False, "Reason": "Got status code 500"},
    ]
    assert received(updates) == [(UPDATE, "1")] * 4
    assert await store.logs(1, 2) == [
        "2026-11-25 01:54:40 UTC: HTTP mirror is up",
        "2026-11-25 01:56:40 UTC: HTTP mirror is down: Got status code 500",
    ]
    with pytest.raises(MirrorNotFound):
        await store.set_state(8, events.PROTO_HTTP, True, "")
    assert redis_db.exists("MIRROR_8") == 0
    with pytest.raises(ValueError):
        await store.set_state(1, 0, True, "")


@pytest_twisted.ensureDeferred
async def test_remove_deletes_the_mirror_and_its_files_but_keeps_stats(
    store: MirrorStore, redis_db: redis.Redis
) -> None:
    await store.add_mirror(Mirror(name="gone", http_url="http://gone/"))
    await store.add_mirror(Mirror(name="kept", http_url="http://kept/"))
    paths = ["/a", "/b c"] + [f"/many/{n}" for n in range(2500)]
    pipe = redis_db.pipeline()
    pipe.sadd("MIRRORFILES_1", *paths)
    for path in paths:
        pipe.sadd(f"FILEMIRRORS_{path}", "1")
        pipe.hset(f"FILEINFO_1_{path}", mapping={"size": "1"})
    pipe.sadd("FILEMIRRORS_/a", "2")
    pipe.hset("FILEINFO_2_/a", mapping={"size": "1"})
    pipe.sadd("MIRRORFILES_2", "/a")
    pipe.sadd("HANDLEDFILES_1", "/a")
    pipe.sadd("MIRRORFILESTMP_1", "/a")
    pipe.set("SCANNING_1", "1", ex=10)
    pipe.hset("STATS_MIRROR", mapping={"1": "4", "2": "5"})
    pipe.execute()
    updates = subscribe(redis_db, UPDATE, keys.CHANNEL_MIRROR_FILE_UPDATE)

    assert await store.remove_mirror(1) == "gone"

    assert set(redis_db.scan_iter("*")) == {
        keys.DB_VERSION, keys.LAST_MID, keys.MIRRORS, "MIRROR_2", "MIRRORLOGS_2",
        "FILEMIRRORS_/a", "FILEINFO_2_/a", "MIRRORFILES_2", "STATS_MIRROR",
    }
    assert redis_db.smembers("FILEMIRRORS_/a") == {"2"}
    assert redis_db.hgetall(keys.MIRRORS) == {"2": "kept"}
    assert redis_db.hgetall("STATS_MIRROR") == {"1": "4", "2": "5"}
    messages = received(updates)
    assert messages[0] == (UPDATE, "1") and messages[-1] == (UPDATE, "1")
    file_updates = messages[1:-1]
    assert sorted(file_updates) == sorted(
        (keys.CHANNEL_MIRROR_FILE_UPDATE, f"1 {path}") for path in paths)
    with pytest.raises(MirrorNotFound):
        await store.remove_mirror(1)


@pytest_twisted.ensureDeferred
async def test_logs_are_rendered_and_bad_entries_skipped(
    store: MirrorStore, redis_db: redis.Redis
) -> None:
    await store.add_mirror(Mirror(name="m", http_url="http://m/"))
    redis_db.rpush("MIRRORLOGS_1", "not json")
    redis_db.rpush("MIRRORLOGS_1", *[
        json.dumps({"Type": 8, "MirrorID": 1, "Timestamp": "2026-11-25T02:00:00Z",
                    "FilesIndexed": n, "KnownIndexed": 1, "Removed": 0, "TZOffset": 0})
        for n in range(600)
    ])
    lines = await store.logs(1, 0)
    assert len(lines) == 500
    assert lines[-1] == "2026-11-25 02:00:00 UTC: Scan completed: 599 files (1 known), 0 removed"
    assert len(await store.logs(1, -3)) == 500
    everything = await store.logs(1, 1000)
    assert len(everything) == 601  # the unparsable entry is skipped
    assert everything[0] == "2026-11-25 01:54:40 UTC: Mirror added"
    assert await store.logs(2, 10) == []


@pytest_twisted.ensureDeferred
async def test_the_event_log_keeps_its_last_entries_only(
    store: MirrorStore, service: RedisService, redis_db: redis.Redis
) -> None:
    """The reference RPUSHes forever (spec §20.23); here a log stops at MAX_ENTRIES."""
    await store.add_mirror(Mirror(name="m", http_url="http://m/"))
    key = keys.mirror_logs(1)
    redis_db.rpush(key, *[f"old {n}" for n in range(MAX_ENTRIES)])  # "Mirror added" + these
    assert await store.set_state(1, events.PROTO_HTTP, True, "") is True
    assert redis_db.llen(key) == MAX_ENTRIES
    assert redis_db.lindex(key, 0) == "old 1"  # "Mirror added" and "old 0" are gone
    assert json.loads(redis_db.lindex(key, -1))["Up"] is True
    await record_scan_failure(service.client(), 1, "rsync: exit status 10", 0)
    assert redis_db.llen(key) == MAX_ENTRIES
    assert redis_db.lindex(key, 0) == "old 2"
    assert (await store.logs(1, 1))[0].endswith("Error: rsync: exit status 10")


def test_operations_need_a_ready_database(clock: Clock) -> None:
    unstarted = RedisService("127.0.0.1:1", "", 0, (), "", reactor)
    store = MirrorStore(unstarted, clock)
    with pytest.raises(DatabaseNotReady):
        store.all_mirrors().send(None)
