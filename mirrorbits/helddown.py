"""Mirrors held down in memory: found down by this node while Redis would not record it.

A mirror's state lives in Redis, and every process learns it by reading it back. While
Redis refuses writes (a replica, ``NOREPLICAS``, ``OOM``) or cannot be reached, a mirror
this node's checks find down cannot be recorded so: it is held here instead (mirror and
protocol -> reason, when), and this node's HTTP processes treat it as down on that
protocol (:meth:`HeldDown.apply`, where the cache hands out mirror records). The daemon
owns the set; its HTTP workers follow copies of it (:meth:`snapshot`, :meth:`follow`).

A protocol leaves the set when a write of its state succeeds, when a check finds it up
again, or when a message about the mirror is read (every such message follows a write to
Redis: Redis accepts writes again and holds the truth). In a process whose cache hands the
records out (``until_read``), a released mirror stays down there until the cache has read its
record again (:meth:`read`): the record it holds is from before, and this process' own Redis
connections may come back later than the daemon's. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from attrs import define, evolve, field

from mirrorbits.model import Mirror
from mirrorbits.store.events import PROTO_HTTP, PROTO_HTTPS

#: (mirror id, protocol): what one entry holds down.
Key = tuple[int, int]

__all__ = ["HeldDown", "Key"]


@define(eq=False)
class HeldDown:
    """Mirror protocols held down: ``(mirror id, protocol) -> (reason, since)``; each
    listener is called after every change with the mirrors released (whose records are to
    be read again)."""

    _held: dict[Key, tuple[str, float]] = field(factory=dict)
    listeners: list[Callable[[frozenset[int]], None]] = field(factory=list)
    #: Released entries stay down until :meth:`read` (set by the cache that reads them).
    until_read: bool = False
    _leaving: dict[Key, tuple[str, float]] = field(factory=dict, init=False)
    #: Whether any mirror is held (an attribute: read on the request path).
    active: bool = field(default=False, init=False)
    # mirror id -> (the record, the record as held down): one copy per record handed out
    _applied: dict[int, tuple[Mirror, Mirror]] = field(factory=dict, init=False)

    def __bool__(self) -> bool:
        return self.active

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def hold(self, mirror_id: int, proto: int, reason: str, since: float) -> bool:
        """Hold ``(mirror_id, proto)`` down; whether it was not held already (the first
        reason and time are kept)."""
        key = (mirror_id, proto)
        if key in self._held or proto not in (PROTO_HTTP, PROTO_HTTPS):
            return False
        self._held[key] = (reason, since)
        self._leaving.pop(key, None)
        self._changed(frozenset())
        return True

    def release(self, mirror_id: int, proto: int) -> bool:
        """Release one protocol of a mirror; whether it was held."""
        return bool(self._release([(mirror_id, proto)]))

    def release_mirror(self, mirror_id: int) -> list[int]:
        """Release every protocol of a mirror; the protocols that were held."""
        return self._release([key for key in self._held if key[0] == mirror_id])

    def read(self, mirror_id: int) -> None:
        """This process' cache read the mirror's record from Redis: what it says holds."""
        keys = [key for key in self._leaving if key[0] == mirror_id]
        for key in keys:
            del self._leaving[key]
        if keys:
            self._changed(frozenset())

    def _release(self, keys: Iterable[Key]) -> list[int]:
        protos = []
        for key in keys:
            entry = self._held.pop(key, None)
            if entry is not None:
                protos.append(key[1])
                if self.until_read:
                    self._leaving[key] = entry
        if protos:
            self._changed(frozenset(key[0] for key in keys))
        return protos

    def snapshot(self) -> list[list[Any]]:
        """Every entry as ``[mirror id, protocol, reason, since]`` (JSON)."""
        return [[mirror_id, proto, reason, since]
                for (mirror_id, proto), (reason, since) in sorted(self._held.items())]

    def follow(self, entries: Iterable[Sequence[Any]]) -> None:
        """Hold exactly ``entries`` (a :meth:`snapshot` of the daemon's set); malformed
        entries are left out."""
        held: dict[Key, tuple[str, float]] = {}
        for entry in entries:
            try:
                mirror_id, proto, reason, since = entry
                held[int(mirror_id), int(proto)] = (str(reason), float(since))
            except (TypeError, ValueError):
                continue
        if held == self._held:
            return
        gone = [key for key in self._held if key not in held]
        if self.until_read:
            self._leaving.update((key, self._held[key]) for key in gone)
        for key in held:
            self._leaving.pop(key, None)
        self._held = held
        self._changed(frozenset(key[0] for key in gone))

    def apply(self, mirror: Mirror) -> Mirror:
        """``mirror`` as this node sees it: down, with the reason found, on each protocol
        held (the same copy as long as the record and the set do not change)."""
        if not self._held and not self._leaving:
            return mirror
        applied = self._applied.get(mirror.id)
        if applied is not None and applied[0] is mirror:
            return applied[1]
        http = self._entry((mirror.id, PROTO_HTTP))
        https = self._entry((mirror.id, PROTO_HTTPS))
        if http is None and https is None:
            return mirror
        held = mirror
        if http is not None:
            held = evolve(held, http_up=False, http_down_reason=http[0])
        if https is not None:
            held = evolve(held, https_up=False, https_down_reason=https[0])
        self._applied[mirror.id] = (mirror, held)
        return held

    def _entry(self, key: Key) -> tuple[str, float] | None:
        return self._held.get(key) or self._leaving.get(key)

    def _changed(self, released: frozenset[int]) -> None:
        self.active = bool(self._held or self._leaving)
        self._applied.clear()
        for listener in list(self.listeners):
            listener(released)
