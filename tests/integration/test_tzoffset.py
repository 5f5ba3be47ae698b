"""Timezone-offset detection against a real redis-server (spec §6.4 step 11, §6.5, §9.2 rule 3)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import pytest
import pytest_twisted  # type: ignore[import-untyped]
import redis
import txredisapi
from twisted.internet.task import Clock

from mirrorbits.encoding import encode_bool, format_go_time
from mirrorbits.model import FileInfo, GeoRecord
from mirrorbits.scan.commit import commit_scan
from mirrorbits.scan.rsync import ScanListing
from mirrorbits.scan.rsync_listing import ListedFile
from mirrorbits.scan.tzoffset import store_detected_offset
from mirrorbits.selection import Secure, SelectionOptions, select
from mirrorbits.store import keys
from mirrorbits.store.events import SCANNER_RSYNC
from mirrorbits.store.records import file_info_from_hash, file_info_to_fields, mirror_from_hash
from tests.integration.store_support import captured_log
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

F = TypeVar("F", bound=Callable[..., Any])
S = 1_000_000_000
HOUR_NS = 3600 * S
BASE_NS = 1_795_571_680 * S
SCAN_TIME = 1_795_580_000
NAME = "madrid"


def ensure_deferred(test: F) -> F:
    return cast(F, pytest_twisted.ensureDeferred(test))


def async_yield_fixture(fixture: F) -> F:
    return cast(F, pytest_twisted.async_yield_fixture(fixture))


@async_yield_fixture
async def client(redis_server: RedisServer, redis_db: redis.Redis) -> AsyncIterator[Any]:
    connection = await txredisapi.ConnectionPool(
        redis_server.host, redis_server.port, dbid=0, poolsize=2, reconnect=False,
        convertNumbers=False,
    )
    yield connection
    await connection.disconnect()


def local_files(count: int) -> list[FileInfo]:
    return [FileInfo(f"/pool/f{n:02d}.deb", 1000 + n, BASE_NS + n * 60 * S)
            for n in range(count)]


def index_locally(db: redis.Redis, files: list[FileInfo]) -> None:
    """``FILES`` and ``FILE_<path>`` as the local scan writes them (times in the local zone)."""
    db.sadd(keys.FILES, *(f.path for f in files))
    for f in files:
        db.hset(keys.file(f.path), mapping=dict(file_info_to_fields(f)))


def register_mirror(db: redis.Redis) -> None:
    db.hset(keys.MIRRORS, "1", NAME)
    db.hset(keys.mirror(1), mapping={
        "ID": "1", "name": NAME, "http": "http://127.0.0.1/m1/", "enabled": encode_bool(True),
        "httpUp": encode_bool(True), "lastSuccessfulSyncPrecision": str(S)})


def mirror_scanned(db: redis.Redis, listed: list[ListedFile]) -> None:
    """``MIRRORFILES_1``, ``FILEINFO_1_<path>``, ``HANDLEDFILES_1`` as a mirror scan leaves them."""
    db.sadd(keys.mirror_files(1), *(f.path for f in listed))
    for f in listed:
        db.hset(keys.file_info(1, f.path),
                mapping={"size": str(f.size), "modTime": format_go_time(f.mod_time_ns)})
    db.sinterstore(keys.handled_files(1), [keys.FILES, keys.mirror_files(1)])


def one_hour_older(files: list[FileInfo]) -> list[ListedFile]:
    return [ListedFile(f.path, f.size, (f.mod_time_ns or 0) - HOUR_NS) for f in files]


def hash_of(db: redis.Redis, key: str) -> dict[str, str]:
    return cast(dict[str, str], db.hgetall(key))


def reasons(db: redis.Redis, path: str, fix: bool) -> tuple[list[str], list[str]]:
    """(accepted names, exclude reasons) of a selection for ``path`` from the stored records."""
    mirror = mirror_from_hash(hash_of(db, keys.mirror(1)))
    local = file_info_from_hash(path, hash_of(db, keys.file(path)))
    on_mirror = file_info_from_hash(path, hash_of(db, keys.file_info(1, path)))
    selection = select(local, [(mirror, on_mirror)], GeoRecord(), Secure.UNDEFINED,
                       SelectionOptions(fix_timezone_offsets=fix), random.Random(1))
    return ([c.mirror.name for c in selection.mirrors],
            [c.exclude_reason for c in selection.excluded])


@ensure_deferred
async def test_a_mirror_one_hour_behind_is_corrected_and_then_selected(
    client: Any, redis_db: redis.Redis
) -> None:
    files = local_files(20)
    index_locally(redis_db, files)
    register_mirror(redis_db)
    mirror_scanned(redis_db, one_hour_older(files))
    path = files[3].path
    assert reasons(redis_db, path, fix=True) == (
        [], ["Mod time mismatch (diff: 1h0m0s)"])
    pubsub = redis_db.pubsub()
    pubsub.subscribe(keys.CHANNEL_MIRROR_UPDATE)
    subscribed = pubsub.get_message(timeout=5)
    assert subscribed is not None and subscribed["type"] == "subscribe"

    with captured_log("mirrorbits.scan") as lines:
        offset = await store_detected_offset(client, 1, NAME, S)

    assert offset == 3_600_000
    assert redis_db.hget(keys.mirror(1), "tzoffset") == "3600000"
    assert lines == [f"[{NAME}] Timezone offset detected: applied correction of 3600000ms"]
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None and message["data"] == "1"
    assert reasons(redis_db, path, fix=True) == ([NAME], [])
    # The offset is applied only when FixTimezoneOffsets is on (§9.2 rule 3).
    assert reasons(redis_db, path, fix=False) == ([], ["Mod time mismatch (diff: 1h0m0s)"])


@ensure_deferred
async def test_too_few_pairs_store_zero_with_a_warning(
    client: Any, redis_db: redis.Redis
) -> None:
    files = local_files(9)
    index_locally(redis_db, files)
    register_mirror(redis_db)
    redis_db.hset(keys.mirror(1), "tzoffset", "5000")
    mirror_scanned(redis_db, one_hour_older(files))

    with captured_log("mirrorbits.scan") as lines:
        offset = await store_detected_offset(client, 1, NAME, S)

    assert offset == 0
    assert redis_db.hget(keys.mirror(1), "tzoffset") == "0"
    assert lines == [f"[{NAME}] Unable to guess the timezone offset"]


@pytest.mark.parametrize(("size_mismatches", "expected"), [(5, 3_600_000), (6, 0)])
@ensure_deferred
async def test_only_files_of_equal_size_with_a_known_mirror_time_count(
    client: Any, redis_db: redis.Redis, size_mismatches: int, expected: int
) -> None:
    files = local_files(20)
    index_locally(redis_db, files)
    register_mirror(redis_db)
    listed = one_hour_older(files)
    # Of the 20 sampled files, 5 have no known mirror time: with 5 size mismatches 10 pairs
    # remain (enough: 10 >= 20 // 2), with 6 only 9 (too few).
    unknown_time = listed[:5]
    wrong_size = [ListedFile(f.path, f.size + 1, f.mod_time_ns)
                  for f in listed[5:5 + size_mismatches]]
    mirror_scanned(redis_db, wrong_size + listed[5 + size_mismatches:])
    for f in unknown_time:
        redis_db.sadd(keys.mirror_files(1), f.path)
        redis_db.hset(keys.file_info(1, f.path),
                      mapping={"size": str(f.size), "modTime": "0001-01-01 00:00:00 +0000 UTC"})
    redis_db.sinterstore(keys.handled_files(1), [keys.FILES, keys.mirror_files(1)])

    with captured_log("mirrorbits.scan") as lines:
        offset = await store_detected_offset(client, 1, NAME, S)

    assert offset == expected
    assert redis_db.hget(keys.mirror(1), "tzoffset") == str(expected)
    warned = [f"[{NAME}] Unable to guess the timezone offset"]
    assert (lines == warned) is (expected == 0)


@ensure_deferred
async def test_a_scan_with_the_feature_on_reports_the_offset(
    client: Any, redis_db: redis.Redis
) -> None:
    files = local_files(20)
    index_locally(redis_db, files)
    register_mirror(redis_db)
    clock = Clock()
    clock.advance(SCAN_TIME)
    listing = ScanListing(files=tuple(one_hour_older(files)))

    result = await commit_scan(client, 1, NAME, listing, SCANNER_RSYNC, clock,
                               fix_timezone_offsets=True)

    assert (result.files, result.known, result.tz_offset_ms) == (20, 20, 3_600_000)
    assert redis_db.hget(keys.mirror(1), "tzoffset") == "3600000"
    completed = json.loads(redis_db.lrange(keys.mirror_logs(1), -1, -1)[0])
    assert (completed["Type"], completed["TZOffset"]) == (8, 3_600_000)

    result = await commit_scan(client, 1, NAME, listing, SCANNER_RSYNC, clock)

    assert result.tz_offset_ms == 0
    assert redis_db.hget(keys.mirror(1), "tzoffset") == "0"
    completed = json.loads(redis_db.lrange(keys.mirror_logs(1), -1, -1)[0])
    assert completed["TZOffset"] == 0
