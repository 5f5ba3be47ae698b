"""The database format version (§3.9): check it at start-up and upgrade old databases.

A fresh database gets version 2. Versions 0 and 1 are upgraded under the
cluster-wide ``LOCK_upgrade`` lock (§3.4); everything an upgrader prepares goes to
``V1_*``/``V2_*`` scratch keys first and is put in place by one MULTI, so an
interrupted upgrade leaves the old database intact and can simply be re-run.
"""

from __future__ import annotations

import secrets

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from mirrorbits.logs import Logger
from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient, Value
from mirrorbits.store.commands import delete_keys, gather, scan_keys, transaction
from mirrorbits.store.errors import StoreError
from mirrorbits.store.records import MirrorField

LOCK_TTL_MS = 5000
LOCK_KEEPALIVE = 1.0  # seconds
LOCK_POLL = 0.1  # seconds between two looks at another node's upgrade
MAX_LOCK_WAIT = 3600.0  # seconds; the caller retries afterwards

_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)

log = Logger()


class UnsupportedDatabaseVersion(StoreError):
    """The database was written by a newer Mirrorbits."""


async def _sleep(clock: IReactorTime, seconds: float) -> None:
    await task.deferLater(clock, seconds, lambda: None)


async def read_db_version(client: RedisClient) -> int:
    """The stored version; a fresh database is marked as version 2 on the way."""
    value = await client.get(keys.DB_VERSION)
    if value is None:
        if await client.exists(keys.MIRRORS):
            return 0
        await client.set(keys.DB_VERSION, str(keys.CURRENT_DB_VERSION))
        return keys.CURRENT_DB_VERSION
    try:
        return int(value)
    except ValueError:
        raise StoreError(f"invalid database version {value!r}") from None


async def ensure_db_version(
    client: RedisClient, clock: IReactorTime, max_wait: float = MAX_LOCK_WAIT
) -> int:
    """Make sure the database has the current format, upgrading it if needed; the version."""
    version = await read_db_version(client)
    warned = False
    deadline = clock.seconds() + max_wait
    while version != keys.CURRENT_DB_VERSION:
        if clock.seconds() > deadline:
            raise StoreError("gave up waiting for another node's database upgrade")
        if version > keys.CURRENT_DB_VERSION:
            raise UnsupportedDatabaseVersion(
                "unsupported database version, please upgrade mirrorbits"
            )
        lock = await UpgradeLock.acquire(client, clock)
        if lock is not None:
            try:
                version = await read_db_version(client)
                if version < keys.CURRENT_DB_VERSION:
                    await _upgrade(client, clock, version)
                    version = await read_db_version(client)
            finally:
                await lock.release()
            continue
        if not warned:
            log.warn("Database upgrade running. Waiting for completion...")
            warned = True
        await _sleep(clock, LOCK_POLL)
        version = await read_db_version(client)
    return version


async def check_db_version(client: RedisClient) -> int:
    """The stored version, required current: a replica is read, never upgraded."""
    value = await client.get(keys.DB_VERSION)
    if value != str(keys.CURRENT_DB_VERSION):
        raise StoreError(f"database version {value or 'unset'} on a replica: read once a "
                         f"master has made it {keys.CURRENT_DB_VERSION}")
    return keys.CURRENT_DB_VERSION


class UpgradeLock:
    """``LOCK_upgrade``: ``SET NX PX 5000`` with a random value, renewed every second."""

    def __init__(self, client: RedisClient, clock: IReactorTime, token: str) -> None:
        self._client = client
        self._token = token
        self._keepalive = task.LoopingCall(self._renew)
        self._keepalive.clock = clock

    @classmethod
    async def acquire(cls, client: RedisClient, clock: IReactorTime) -> UpgradeLock | None:
        """The lock, or None when another node holds it."""
        token = str(secrets.randbelow(2**63))
        reply = await client.set(keys.LOCK_UPGRADE, token, pexpire=LOCK_TTL_MS,
                                 only_if_not_exists=True)
        if reply is None:
            return None
        lock = cls(client, clock, token)
        lock._keepalive.start(LOCK_KEEPALIVE, now=False)
        return lock

    async def _renew(self) -> None:
        try:
            renewed = await self._client.execute_command(
                "EVAL", _RENEW, 1, keys.LOCK_UPGRADE, self._token, LOCK_TTL_MS
            )
        except Exception as exc:
            log.warn("Could not renew the upgrade lock: {error}", error=exc)
            return
        if str(renewed) != "1":
            log.warn("The database upgrade lock was lost")
            self._keepalive.stop()

    async def release(self) -> None:
        """Stop renewing; delete the lock only if it is still ours."""
        if self._keepalive.running:
            self._keepalive.stop()
        await self._client.execute_command("EVAL", _RELEASE, 1, keys.LOCK_UPGRADE, self._token)


async def _upgrade(client: RedisClient, clock: IReactorTime, version: int) -> None:
    upgraders = {0: _upgrade_v0_to_v1, 1: _upgrade_v1_to_v2}
    for target in range(version + 1, keys.CURRENT_DB_VERSION + 1):
        started = clock.seconds()
        log.info("Upgrading the database to version {version}...", version=target)
        await upgraders[target - 1](client)
        log.info("Database upgraded to version {version} in {seconds:.3f}s",
                 version=target, seconds=clock.seconds() - started)


async def _types(client: RedisClient, names: list[str]) -> list[str]:
    return [str(kind) for kind in await gather(client.type(name) for name in names)]


async def _copy(client: RedisClient, source: str, destination: str) -> bool:
    """DUMP/RESTORE ``source`` to ``destination``; False if ``source`` does not exist."""
    payload = await client.execute_command("DUMP", source)
    if payload is None:
        return False
    await client.execute_command("RESTORE", destination, 0, payload, "REPLACE")
    return True


def _split_file_info(key: str, ids: dict[str, int]) -> tuple[str, str] | None:
    """``FILEINFO_<name>_<path>`` → ``(name, path)`` for a known mirror name."""
    rest = key[len(keys.FILE_INFO_PREFIX):]
    start = 0
    while (cut := rest.find("_/", start)) >= 0:
        if rest[:cut] in ids:
            return rest[:cut], rest[cut + 1:]
        start = cut + 1
    return None


async def _upgrade_v0_to_v1(client: RedisClient) -> None:
    """Version 0 keyed everything by mirror name; version 1 by numeric ID."""
    scratch = keys.V1_SCRATCH_PREFIX
    await delete_keys(client, await scan_keys(client, scratch + "*"))
    kind = await client.type(keys.MIRRORS)
    if kind != "list":
        raise StoreError(f"cannot upgrade from version 0: {keys.MIRRORS} is a {kind}, not a list")
    names = list(dict.fromkeys(await client.lrange(keys.MIRRORS, 0, -1)))
    if not names:
        raise StoreError(f"cannot upgrade from version 0: {keys.MIRRORS} is empty")
    ids: dict[str, int] = {}
    for name in names:
        ids[name] = int(await client.incr(keys.LAST_MID))
    await client.hmset(scratch + keys.MIRRORS, {str(mid): name for name, mid in ids.items()})

    moves: list[tuple[str, str]] = [(scratch + keys.MIRRORS, keys.MIRRORS)]
    deletes: list[str] = []
    for name, mid in ids.items():
        copy = scratch + keys.mirror(mid)
        if await _copy(client, keys.mirror(name), copy):
            await client.hmset(copy, {MirrorField.ID: str(mid), MirrorField.NAME: name})
            deletes.append(keys.mirror(name))
            moves.append((copy, keys.mirror(mid)))
        for old, new in ((keys.v0_mirror_files(name), keys.mirror_files(mid)),
                         (keys.handled_files(name), keys.handled_files(mid))):
            if await client.exists(old):
                moves.append((old, new))

    for key in await scan_keys(client, keys.FILE_INFO_PREFIX + "*"):
        found = _split_file_info(key, ids)
        if found is not None:
            moves.append((key, keys.file_info(ids[found[0]], found[1])))

    for key in await scan_keys(client, keys.file_mirrors("") + "*"):
        members = await client.smembers(key)
        new_ids = sorted({str(ids[m]) for m in members if m in ids}, key=int)
        if new_ids:
            await client.sadd(scratch + key, new_ids)
            moves.append((scratch + key, key))
        else:
            deletes.append(key)

    stats = await scan_keys(client, keys.STATS_MIRROR + "*")
    for key, kind in zip(stats, await _types(client, stats), strict=True):
        if kind != "hash":
            continue
        counts = await client.hgetall(key)
        rewritten = {str(ids[name]): value for name, value in counts.items() if name in ids}
        if rewritten:
            await client.hmset(scratch + key, rewritten)
            moves.append((scratch + key, key))
        else:
            deletes.append(key)

    # Renamed in two steps through scratch names, so that a new name equal to an
    # old one (a mirror named "2"...) can never overwrite a key not yet moved.
    parking = [f"{scratch}MOVE_{i}" for i in range(len(moves))]
    commands: list[tuple[Value, ...]] = [("DEL", key) for key in deletes]
    commands += [("RENAME", src, park) for (src, _), park in zip(moves, parking, strict=True)]
    commands += [("RENAME", park, dst) for (_, dst), park in zip(moves, parking, strict=True)]
    commands.append(("SET", keys.DB_VERSION, "1"))
    await transaction(client, commands)


# Version 1's health-state fields -> version 2's, for an HTTP or an HTTPS mirror.
_V1_STATE = {"up": MirrorField.HTTP_UP, "excludeReason": MirrorField.HTTP_DOWN_REASON}
_V1_SECURE_STATE = {"up": MirrorField.HTTPS_UP, "excludeReason": MirrorField.HTTPS_DOWN_REASON}


async def _upgrade_v1_to_v2(client: RedisClient) -> None:
    """Version 2 splits the health state per protocol (HTTP and HTTPS)."""
    scratch = keys.V2_SCRATCH_PREFIX
    await delete_keys(client, await scan_keys(client, scratch + "*"))
    candidates = await scan_keys(client, keys.mirror("") + "*")
    moves: list[tuple[str, str]] = []
    for key, kind in zip(candidates, await _types(client, candidates), strict=True):
        if kind != "hash":
            continue
        fields = await client.hgetall(key)
        # A hash without an http field upgrades as an HTTP mirror (the reference failed).
        secure = str(fields.get(MirrorField.HTTP, "")).startswith("https://")
        copy = scratch + key
        if not await _copy(client, key, copy):
            continue
        renamed = _V1_SECURE_STATE if secure else _V1_STATE
        present = {old: new for old, new in renamed.items() if old in fields}
        if present:
            await client.hmset(copy, {new: fields[old] for old, new in present.items()})
            await client.hdel(copy, list(present))
        moves.append((copy, key))
    commands: list[tuple[Value, ...]] = [("RENAME", copy, key) for copy, key in moves]
    commands.append(("SET", keys.DB_VERSION, str(keys.CURRENT_DB_VERSION)))
    await transaction(client, commands)
