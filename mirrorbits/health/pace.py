"""How many files of a mirror to verify each turn (pure): in proportion to the users sent
there, between the base rate and a cap.

A mirror that silently deletes a batch of files costs, before the first lost file is found,
about ``D / H`` users, ``D`` being the users sent to it per second and ``H`` its verification
``HEAD``s per second, whatever the order the files are drawn in. So ``H`` follows ``D``:

    H = max(1 / VerifyInterval, min(D × VERIFY_PER_USER, MAX_PER_TURN / VerifyInterval))

An idle mirror keeps one ``HEAD`` per turn (``VerifyInterval`` seconds), which also spares its
liveness probe; a busy one gets at most one ``HEAD`` per two users sent there, and at most
:data:`MAX_PER_TURN` per turn. ``D`` is the growth of the mirror's download counter
(``STATS_MIRROR_<date>``, every node's traffic) between two reads, over the time between them.
See docs/freshness.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import define, field

#: Verification ``HEAD``s per user sent to a mirror (at most one per two users).
VERIFY_PER_USER = 0.5
#: ``HEAD``s per mirror per turn at most (2 a second at the default ``VerifyInterval: 2``).
MAX_PER_TURN = 4

__all__ = ["MAX_PER_TURN", "VERIFY_PER_USER", "Pace", "UsersSent", "heads_per_turn"]


def heads_per_turn(users_per_second: float, interval: float) -> float:
    """The verification ``HEAD``s one turn of ``interval`` seconds asks a mirror sent
    ``users_per_second`` users: at least 1, at most :data:`MAX_PER_TURN` (fractional: the
    turns carry the rest, :class:`Pace`)."""
    wanted = users_per_second * VERIFY_PER_USER * interval
    return max(1.0, min(wanted, float(MAX_PER_TURN)))


@define
class UsersSent:
    """The users sent to each mirror per second, from successive readings of the download
    counters (mirror id -> count today)."""

    _counts: dict[int, int] = field(factory=dict)
    _read_at: float | None = None
    _rates: dict[int, float] = field(factory=dict)

    def read(self, counts: Mapping[int, int], now: float) -> None:
        """A new reading at ``now``; each rate is the growth since the last one over the
        time between them. A counter that fell (a new day's key) counts from zero."""
        if self._read_at is not None and now > self._read_at:
            elapsed = now - self._read_at
            rates = {}
            for mirror_id, count in counts.items():
                before = self._counts.get(mirror_id, 0)
                rates[mirror_id] = (count - before if count >= before else count) / elapsed
            self._rates = rates
        self._counts = dict(counts)
        self._read_at = now

    def per_second(self, mirror_id: int) -> float:
        """Users sent to ``mirror_id`` per second (0 until two readings were made)."""
        return self._rates.get(mirror_id, 0.0)


@define
class Pace:
    """Per mirror, the whole number of ``HEAD``s of each turn: :func:`heads_per_turn` of its
    users, the fractions carried from turn to turn (3.3 a turn: 3, 3, 4, 3...)."""

    users: UsersSent = field(factory=UsersSent)
    _carried: dict[int, float] = field(factory=dict)

    def turn(self, mirror_id: int, interval: float) -> int:
        """The ``HEAD``s of ``mirror_id``'s turn now (1 to :data:`MAX_PER_TURN`)."""
        owed = self._carried.get(mirror_id, 0.0) + heads_per_turn(
            self.users.per_second(mirror_id), interval)
        heads = min(int(owed + 1e-9), MAX_PER_TURN)
        self._carried[mirror_id] = max(owed - heads, 0.0)
        return heads

    def forget_others(self, mirror_ids: set[int]) -> None:
        """Only ``mirror_ids`` are verified now: the others' carried fractions go."""
        self._carried = {key: value for key, value in self._carried.items()
                         if key in mirror_ids}
