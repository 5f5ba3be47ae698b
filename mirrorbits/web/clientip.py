"""Which IP address a request comes from, for geolocation (spec §8.3 step 4).

Beyond the reference: with ``TrustedProxies`` set, ``X-Forwarded-For`` is only
believed from those networks, and IPv6 peers are reported without brackets so
that they can be located.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from attrs import frozen

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@frozen
class ClientAddressPolicy:
    """How to find the client's address; no networks means the header is always believed."""

    trusted: tuple[Network, ...] = ()

    @classmethod
    def from_config(cls, networks: Iterable[str]) -> ClientAddressPolicy:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def client_ip(self, peer_host: str, forwarded_for: bytes | None) -> str:
        """The address to locate: the first ``X-Forwarded-For`` element, else the peer."""
        peer = strip_peer(peer_host)
        if forwarded_for is None or (self.trusted and not self._is_trusted(peer)):
            return peer
        first = forwarded_for.split(b",", 1)[0].strip()
        if not first:
            return peer
        return first.decode("latin-1")

    def _is_trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted)


def strip_peer(host: str) -> str:
    """A peer host as an address: IPv4-mapped IPv6 becomes IPv4, brackets are dropped."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.startswith("::ffff:") and "." in host:
        return host[len("::ffff:"):]
    return host
