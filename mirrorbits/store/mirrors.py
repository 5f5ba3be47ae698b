"""Mirror records in Redis: list, match, add, edit, remove, enable, health state, event log.

Writes follow §3.6 byte for byte (the 24-field HMSET, the ``httpsUp 0``/``httpUp 0``
rule, ``MIRRORS``), then publish ``_mirrorbits_mirror_update`` and append the event
to ``MIRRORLOGS_<id>``. Adding and editing check the name under ``WATCH MIRRORS``,
so two concurrent adds can never create the same name twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import txredisapi
from attrs import evolve
from twisted.internet.defer import FirstError
from twisted.internet.interfaces import IReactorTime

from mirrorbits.encoding import decode_bool, encode_bool
from mirrorbits.float32 import f32
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.store import events, keys
from mirrorbits.store.client import RedisClient
from mirrorbits.store.commands import gather, run_multi, transaction
from mirrorbits.store.errors import MirrorNotFound, NameTaken, StoreError
from mirrorbits.store.eventlog import append_event
from mirrorbits.store.pubsub import publish
from mirrorbits.store.records import (
    MirrorField,
    mirror_from_hash,
    mirror_to_fields,
    normalize_url,
)
from mirrorbits.store.records import sanitize_location_codes as sanitize
from mirrorbits.store.redis import RedisService
from mirrorbits.store.scans import mirror_file_removals

DEFAULT_LOG_LINES = 500
REMOVE_BATCH = 1000  # paths per transaction when removing a mirror's files
WATCH_RETRIES = 10

# Health-check protocol (events.PROTO_*) -> (up field, down-reason field).
_STATE_FIELDS = {
    events.PROTO_HTTP: (MirrorField.HTTP_UP, MirrorField.HTTP_DOWN_REASON),
    events.PROTO_HTTPS: (MirrorField.HTTPS_UP, MirrorField.HTTPS_DOWN_REASON),
}

log = Logger()


def prepare(mirror: Mirror) -> Mirror:
    """A mirror as saved: URLs with their trailing ``/``, clean codes, float32 coordinates."""
    return evolve(
        mirror,
        latitude=f32(mirror.latitude),
        longitude=f32(mirror.longitude),
        http_url=normalize_url(mirror.http_url),
        rsync_url=normalize_url(mirror.rsync_url),
        ftp_url=normalize_url(mirror.ftp_url),
        continent_code=sanitize(mirror.continent_code),
        country_codes=sanitize(mirror.country_codes),
        excluded_country_codes=sanitize(mirror.excluded_country_codes),
    )


def save_commands(mirror: Mirror) -> list[tuple[str, ...]]:
    """The MULTI body of an add/edit (§3.6)."""
    key = keys.mirror(mirror.id)
    pairs = [item for pair in mirror_to_fields(mirror) for item in pair]
    commands: list[tuple[str, ...]] = [("HMSET", key, *pairs)]
    if mirror.http_url.startswith("http://"):
        commands.append(("HMSET", key, MirrorField.HTTPS_UP, "0"))
    elif mirror.http_url.startswith("https://"):
        commands.append(("HMSET", key, MirrorField.HTTP_UP, "0"))
    commands.append(("HSET", keys.MIRRORS, str(mirror.id), mirror.name))
    return commands


def parse_mirror_id(field: str) -> int | None:
    """The mirror ID a field of ``MIRRORS`` names (ASCII decimal digits), else ``None``."""
    return int(field) if field.isascii() and field.isdigit() else None


async def mirror_name(client: RedisClient, mirror_id: int) -> str | None:
    """The name ``MIRRORS`` gives mirror ``mirror_id``; ``None`` when there is no such mirror."""
    name = await client.hget(keys.MIRRORS, str(mirror_id))
    return None if name is None else str(name)


async def read_mirror(client: RedisClient, mirror_id: int) -> Mirror | None:
    """The record ``MIRROR_<id>`` (its ``ID`` field as stored); ``None`` when it is missing."""
    try:
        return mirror_from_hash(await client.hgetall(keys.mirror(mirror_id)))
    except MirrorNotFound:
        return None


async def mirror_ids(client: RedisClient) -> tuple[int, ...]:
    """The ID of every mirror (the fields of the ``MIRRORS`` hash), sorted numerically."""
    fields = await client.hkeys(keys.MIRRORS)
    return tuple(sorted({mid for mid in map(parse_mirror_id, map(str, fields or ()))
                         if mid is not None}))


async def mirror_file_counts(client: RedisClient, ids: Sequence[int]) -> dict[int, int]:
    """How many files each mirror's last successful scan found (``SCARD MIRRORFILES_<id>``),
    in one pipelined round trip."""
    if not ids:
        return {}
    pipe = await client.pipeline()
    for mirror_id in ids:
        pipe.scard(keys.mirror_files(mirror_id))
    try:
        counts: list[int] = await pipe.execute_pipeline()
    except FirstError as err:
        err.subFailure.raiseException()
    return {mirror_id: int(count) for mirror_id, count in zip(ids, counts, strict=True)}


def match_names(names: Mapping[str, str], pattern: str) -> list[tuple[int, str]]:
    """Mirrors whose name contains ``pattern`` (any case), sorted by name.

    An exact (case-sensitive) name wins alone, so ``mirror`` stays selectable next to
    ``mirror2`` (the reference reported both).
    """
    entries = [(int(mid), name) for mid, name in names.items()
               if parse_mirror_id(mid) is not None]
    exact = [entry for entry in entries if entry[1] == pattern]
    if exact:
        return sorted(exact, key=lambda e: (e[1], e[0]))
    folded = pattern.casefold()
    hits = [entry for entry in entries if folded in entry[1].casefold()]
    return sorted(hits, key=lambda e: (e[1], e[0]))


class MirrorStore:
    """Mirror operations over the shared Redis pool.

    ``replica_reads``: :meth:`get_mirror`, :meth:`match`, :meth:`logs` and
    :meth:`all_mirrors` read from a replica while no master answers (the control channel's
    store: ``mirrorbits-ctl list`` answers during a failover); the daemon's own work reads
    from the master only, as it writes what it read.
    """

    def __init__(self, redis: RedisService, clock: IReactorTime,
                 replica_reads: bool = False) -> None:
        self._redis = redis
        self._clock = clock
        self._replica_reads = replica_reads

    def _client(self) -> RedisClient:
        return self._redis.client()

    def _reader(self) -> RedisClient:
        return self._redis.read_client() if self._replica_reads else self._redis.client()

    def require_master(self) -> None:
        """:class:`~mirrorbits.store.errors.ReadOnlyReplica` while only a replica answers:
        for a command to call before it writes anything."""
        self._redis.require_master()

    def _now_ns(self) -> int:
        return int(self._clock.seconds() * 1_000_000) * 1000

    async def all_mirrors(self, client: RedisClient | None = None) -> list[Mirror]:
        """Every mirror of ``MIRRORS``, by ID (the hashes are read concurrently), read with
        ``client`` if given (a reader that may be a replica's)."""
        client = client or self._reader()
        names = await client.hgetall(keys.MIRRORS)
        ids = sorted(mid for mid in map(parse_mirror_id, names) if mid is not None)
        hashes = await gather(client.hgetall(keys.mirror(mid)) for mid in ids)
        return [_mirror(mid, h) for mid, h in zip(ids, hashes, strict=True) if h]

    async def get_mirror(self, mirror_id: int) -> Mirror:
        """One mirror; ``MirrorNotFound`` if it does not exist."""
        h = await self._reader().hgetall(keys.mirror(mirror_id))
        if not h or MirrorField.NAME not in h:
            raise MirrorNotFound(f"mirror {mirror_id} not found")
        return _mirror(mirror_id, h)

    async def match(self, pattern: str) -> list[tuple[int, str]]:
        """``(id, name)`` of the mirrors matching ``pattern`` (see :func:`match_names`)."""
        return match_names(await self._reader().hgetall(keys.MIRRORS), pattern)

    async def add_mirror(self, mirror: Mirror) -> Mirror:
        """Store a new (disabled) mirror under a fresh ID; the mirror as saved."""
        if mirror.id != 0:
            raise StoreError("unexpected ID")
        saved = await self._save(evolve(prepare(mirror), enabled=False), adding=True)
        await self._changed(saved.id, events.added_event(saved.id, self._now_ns()))
        return saved

    async def update_mirror(self, mirror: Mirror) -> Mirror:
        """Replace an existing mirror's settings; the mirror as saved."""
        saved = await self._save(prepare(mirror), adding=False)
        await self._changed(saved.id, events.edited_event(saved.id, self._now_ns()))
        return saved

    async def _save(self, mirror: Mirror, adding: bool) -> Mirror:
        client = self._client()
        for _ in range(WATCH_RETRIES):
            conn = await client.watch(keys.MIRRORS)
            try:
                names: dict[str, str] = await conn.hgetall(keys.MIRRORS)
                if not adding and str(mirror.id) not in names:
                    raise MirrorNotFound(f"mirror {mirror.id} not found")
                if any(n == mirror.name and i != str(mirror.id) for i, n in names.items()):
                    raise NameTaken("name already taken")
                if adding:
                    mirror = evolve(mirror, id=int(await conn.incr(keys.LAST_MID)))
                await conn.multi()
            except BaseException:
                if conn.connected and not conn.inMulti:
                    await conn.unwatch()
                raise
            try:
                await run_multi(conn, save_commands(mirror))
            except txredisapi.WatchError:
                continue
            return mirror
        raise StoreError("the mirror list changed too often, try again")

    async def _changed(self, mirror_id: int, event: str | None) -> None:
        """Tell the other nodes, then append ``event`` to the mirror's log."""
        client = self._client()
        await publish(client, keys.CHANNEL_MIRROR_UPDATE, str(mirror_id))
        if event is not None:
            await append_event(client, mirror_id, event)

    async def _require(self, client: RedisClient, mirror_id: int) -> str:
        name = await mirror_name(client, mirror_id)
        if name is None:
            raise MirrorNotFound(f"mirror {mirror_id} not found")
        return name

    async def set_enabled(self, mirror_id: int, enabled: bool) -> None:
        """Enable or disable a mirror (logged as ENABLED/DISABLED)."""
        client = self._client()
        await self._require(client, mirror_id)
        await client.hmset(keys.mirror(mirror_id), {MirrorField.ENABLED: encode_bool(enabled)})
        now = self._now_ns()
        event = (events.enabled_event if enabled else events.disabled_event)(mirror_id, now)
        await self._changed(mirror_id, event)

    async def set_state(self, mirror_id: int, proto: int, up: bool, reason: str) -> bool:
        """Record a health-check result for one protocol; whether the state changed."""
        if proto not in _STATE_FIELDS:
            raise ValueError(f"invalid protocol {proto}")
        up_field, reason_field = _STATE_FIELDS[proto]
        client = self._client()
        key = keys.mirror(mirror_id)
        ident, old = await client.hmget(key, [MirrorField.ID, up_field])
        if ident is None:
            raise MirrorNotFound(f"mirror {mirror_id} not found")
        changed = decode_bool(old) != up
        fields = {up_field: encode_bool(up), reason_field: reason}
        if changed:
            fields[MirrorField.STATE_SINCE] = str(int(self._clock.seconds()))
        await client.hmset(key, fields)
        event = None
        if changed:
            event = events.state_changed_event(mirror_id, proto, up, reason, self._now_ns())
        await self._changed(mirror_id, event)
        return changed

    async def remove_mirror(self, mirror_id: int) -> str:
        """Delete a mirror and everything about its files (statistics are kept); its name."""
        client = self._client()
        name = await self._require(client, mirror_id)
        await self.set_enabled(mirror_id, False)
        files_key = keys.mirror_files(mirror_id)
        cursor = "0"
        for _ in range(100_000_000):  # a bound only: SSCAN ends when the cursor returns to 0
            cursor, paths = await client.sscan(files_key, cursor, None, REMOVE_BATCH)
            if paths:
                await transaction(client, mirror_file_removals(mirror_id, paths))
            if str(cursor) == "0":
                break
        doomed = (keys.mirror(mirror_id), files_key, keys.mirror_files_tmp(mirror_id),
                  keys.handled_files(mirror_id), keys.mirror_logs(mirror_id),
                  keys.scanning(mirror_id))
        await transaction(client, [("DEL", *doomed), ("HDEL", keys.MIRRORS, str(mirror_id))])
        await self._changed(mirror_id, None)
        return name

    async def logs(self, mirror_id: int, max_results: int) -> list[str]:
        """The last ``max_results`` (≤ 0: 500) entries of the mirror's event log, rendered."""
        count = max_results if max_results > 0 else DEFAULT_LOG_LINES
        entries = await self._reader().lrange(keys.mirror_logs(mirror_id), -count, -1)
        lines = []
        for entry in entries:
            rendered = events.render_event(str(entry))
            if rendered is None:
                log.warn("Unable to parse log line of mirror {id}: {entry}",
                         id=mirror_id, entry=entry)
                continue
            lines.append(events.format_log_line(*rendered))
        return lines


def _mirror(mirror_id: int, h: Mapping[str, str]) -> Mirror:
    mirror = mirror_from_hash(h)
    return mirror if mirror.id == mirror_id else evolve(mirror, id=mirror_id)

