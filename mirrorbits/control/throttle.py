"""Wrong control passwords counted per source, and sources refused for a growing time (pure).

The first :data:`FREE_FAILURES` wrong passwords from a source are answered at once, like any
other; then every further wrong one refuses the source for a period that doubles each time
(:data:`FIRST_BLOCK` seconds up to :data:`LONGEST_BLOCK`). While refused, a source's calls
are answered without their password being looked at, so guessing goes no faster by sending
more. A right password clears the source's count. Sources are IPv4 addresses, IPv6 /64
networks (one host usually has a whole one) or ``local`` (the UNIX socket).
"""

from __future__ import annotations

import ipaddress

from attrs import define, field
from twisted.internet.interfaces import IReactorTime

FREE_FAILURES = 3
FIRST_BLOCK = 1.0
LONGEST_BLOCK = 300.0
# A source without a wrong password for this long starts again from zero.
FORGET_AFTER = 3600.0
# Sources remembered at most (the oldest are forgotten first).
MAX_SOURCES = 10_000


def source_of(host: str | None) -> str:
    """The source a peer address counts for: the address, its IPv6 /64, or ``local``."""
    if not host:
        return "local"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@define
class _Failures:
    count: int
    last: float
    blocked_until: float = 0.0


@define
class FailedPasswords:
    """The wrong passwords of each source, on ``clock``'s time."""

    clock: IReactorTime
    free_failures: int = FREE_FAILURES
    first_block: float = FIRST_BLOCK
    longest_block: float = LONGEST_BLOCK
    max_sources: int = MAX_SOURCES
    _sources: dict[str, _Failures] = field(factory=dict)

    def refused_for(self, source: str) -> float:
        """Seconds ``source`` stays refused (0: its password may be checked)."""
        failures = self._sources.get(source)
        if failures is None:
            return 0.0
        return max(failures.blocked_until - self.clock.seconds(), 0.0)

    def failed(self, source: str) -> float:
        """Count a wrong password; the seconds the source is now refused for (0: none)."""
        now = self.clock.seconds()
        failures = self._sources.pop(source, None)  # re-inserted: the dict stays oldest first
        if failures is None or now - failures.last > FORGET_AFTER:
            failures = _Failures(0, now)
        failures.count += 1
        failures.last = now
        self._sources[source] = failures
        self._forget_oldest()
        beyond = failures.count - self.free_failures
        if beyond <= 0:
            return 0.0
        block = min(self.first_block * 2.0 ** min(beyond - 1, 64), self.longest_block)
        failures.blocked_until = now + block
        return block

    def succeeded(self, source: str) -> None:
        """A right password: the source starts again from zero."""
        self._sources.pop(source, None)

    def __len__(self) -> int:
        return len(self._sources)

    def _forget_oldest(self) -> None:
        while len(self._sources) > self.max_sources:
            del self._sources[next(iter(self._sources))]
