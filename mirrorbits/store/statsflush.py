"""Writing one batch of download counters to the ``STATS_*`` keys (§11.1), exactly once.

A batch is written by one Lua script, atomically with respect to other clients, and
**all or nothing** when Redis refuses writes: the script's first write records the batch
(``STATSBATCH_<id>``, expiring after :data:`BATCH_TTL`), and it is made with
``redis.call``, so a refusal (``OOM`` under ``maxmemory``, ``READONLY`` on a replica,
``NOREPLICAS``, ``MISCONF``) fails the script before anything is written. Once a script
has written, every Redis version from 3.2 to 7.x lets it run to the end (the memory limit
is checked only before a script's first write; the role and disk state cannot change while
it runs). The script carries no ``#!lua`` line: Redis 6 and older reject one, and with one
Redis 7 would refuse the script up front only where flags say so, which adds nothing here.

The record makes the script **idempotent**: written again with the same id (after a lost
reply, or on a new master after a failover), a batch already there is not counted twice.
Increments refused one by one (a key of another type, an overflow) are data errors that a
retry cannot fix: the script counts them and goes on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from datetime import date

import txredisapi
from attrs import frozen

from mirrorbits.store import keys
from mirrorbits.store.client import RedisClient
from mirrorbits.store.connection import describe
from mirrorbits.store.errors import StoreError

# How long Redis remembers a written batch: a batch is replayed only while younger than this
# (the statistics service forgets them well before, see mirrorbits.stats.KEEP_SECONDS).
BATCH_TTL = 3600

# (UTC day, field) -> amount
Counts = Mapping[tuple[date, str], int]

# KEYS[1] STATS_TOTAL, KEYS[2] the batch record. ARGV[1..3]: the key prefixes of the three
# counter kinds; ARGV[4]: the STATS_TOTAL increment; ARGV[5]: the increments, each
# "<kind><day>\0<amount>\0<field>\0" (kind 1-3, day an index; file names cannot contain
# NUL); ARGV[6]: the record's lifetime; ARGV[7..]: four key suffixes per day. Each increment
# goes to the four levels of its day. Returns -1 when the batch was already written (its
# record is then renewed, a write that a WAIT can follow), else how many increments Redis
# refused.
_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  return -1
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[6])
local failed = 0
local payload = ARGV[5]
local pos = 1
local size = #payload
while pos <= size do
  local a = string.find(payload, "\\0", pos, true)
  local b = string.find(payload, "\\0", a + 1, true)
  local c = string.find(payload, "\\0", b + 1, true)
  local prefix = ARGV[tonumber(string.sub(payload, pos, pos))]
  local first = 6 + 4 * tonumber(string.sub(payload, pos + 1, a - 1))
  local amount = string.sub(payload, a + 1, b - 1)
  local name = string.sub(payload, b + 1, c - 1)
  for level = 1, 4 do
    local reply = redis.pcall('HINCRBY', prefix .. ARGV[first + level], name, amount)
    if type(reply) == 'table' and reply.err then failed = failed + 1 end
  end
  pos = c + 1
end
local total = tonumber(ARGV[4])
if total and total > 0 then
  local reply = redis.pcall('INCRBY', KEYS[1], total)
  if type(reply) == 'table' and reply.err then failed = failed + 1 end
end
return failed
"""


@frozen
class Written:
    """What the script did with a batch."""

    duplicate: bool  # already written before (by an earlier attempt): nothing counted now
    refused: int  # increments Redis refused (data errors), when not a duplicate


def _suffixes(day: date) -> tuple[str, str, str, str]:
    return keys.stats_suffixes(day.year, day.month, day.day)


def script_arguments(files: Counts, mirrors: Counts, sizes: Counts, total: int) -> list[bytes]:
    """The ``ARGV`` of the script, after the record's lifetime is inserted.

    Building one payload costs a fraction of what thousands of separate arguments cost the
    Redis client to encode; names are sent as the bytes of the file name (undecodable bytes
    of a non-UTF-8 name included).
    """
    return ScriptArguments(files, mirrors, sizes, total).complete()


class ScriptArguments:
    """:func:`script_arguments` built a slice at a time: :meth:`advance` encodes at most
    ``limit`` counters, so that a batch of many files does not hold the reactor for one
    long turn (5,000 counters: 1.5–5 ms). The counters must not change meanwhile."""

    def __init__(self, files: Counts, mirrors: Counts, sizes: Counts, total: int) -> None:
        self._total = total
        self._left: Iterator[tuple[bytes, tuple[tuple[date, str], int]]] = itertools.chain(
            zip(itertools.repeat(b"1"), files.items()),
            zip(itertools.repeat(b"2"), mirrors.items()),
            zip(itertools.repeat(b"3"), sizes.items()))
        self._days: dict[date, bytes] = {}
        self._parts: list[bytes] = []
        self.size = 0  # bytes encoded so far
        self.done = False

    def advance(self, limit: int) -> bool:
        """Encode up to ``limit`` more counters; whether all are now."""
        days, parts = self._days, self._parts
        taken = 0
        for kind, ((day, name), amount) in itertools.islice(self._left, limit):
            taken += 1
            if not amount:
                continue
            index = days.get(day)
            if index is None:
                index = days[day] = str(len(days)).encode()
            part = b"%s%s\0%d\0%s\0" % (kind, index, amount,
                                          name.encode("utf-8", "surrogateescape"))
            parts.append(part)
            self.size += len(part)
        self.done = taken < limit
        return self.done

    def complete(self) -> list[bytes]:
        """The script's arguments, encoding at once what is left."""
        while not self.advance(1 << 30):
            pass
        arguments = [keys.STATS_FILE.encode(), keys.STATS_MIRROR.encode(),
                     keys.STATS_MIRROR_BYTES.encode(), b"%d" % self._total,
                     b"".join(self._parts), b"%d" % BATCH_TTL]
        for day in self._days:
            arguments.extend(suffix.encode() for suffix in _suffixes(day))
        return arguments


class WriteRefused(StoreError):
    """Redis answered the script with an error: nothing of the batch was written."""


async def write_batch(conn: RedisClient, batch_id: str, arguments: list[bytes]) -> Written:
    """Run the script for one batch on ``conn``.

    Raises :class:`WriteRefused` when Redis refuses it (nothing written); any other error
    (a lost connection) leaves it unknown whether the batch was written.
    """
    try:
        reply = await conn.execute_command(
            "EVAL", _SCRIPT, 2, keys.STATS_TOTAL, keys.stats_batch(batch_id), *arguments)
    except txredisapi.ResponseError as err:
        raise WriteRefused(_reason(describe(err))) from err
    refused = int(reply)
    return Written(duplicate=refused < 0, refused=max(refused, 0))


async def renew_record(conn: RedisClient, batch_id: str) -> None:
    """Write the record of a batch already written, on ``conn``: a write that a ``WAIT`` on
    this connection can follow (it covers every earlier write of the master). Never writes
    the batch itself, so a record lost meanwhile (evicted) cannot make it count twice."""
    try:
        await conn.execute_command("SET", keys.stats_batch(batch_id), "1", "EX", BATCH_TTL)
    except txredisapi.ResponseError as err:
        raise WriteRefused(_reason(describe(err))) from err


def _reason(error: str) -> str:
    """Redis' own reason for refusing the script, without where in the script it happened:
    ``OOM ... 'maxmemory'. script: <sha>, on @user_script:6.`` (Redis 7) or ``ERR Error
    running script (...): @user_script:6: -READONLY ...`` (Redis 6)."""
    text = error.split(". script: ", 1)[0]
    if ": -" in text:
        text = text.rsplit(": -", 1)[1]
    return text.rstrip(".") + "."


async def replica_acks(conn: RedisClient, timeout: float) -> int:
    """How many replicas hold every write made so far on ``conn`` (``WAIT``, at most
    ``timeout`` seconds; 0 when the server cannot tell, e.g. it is a replica now)."""
    try:
        return int(await conn.execute_command("WAIT", 1, max(int(timeout * 1000), 1)))
    except txredisapi.ResponseError:
        return 0
