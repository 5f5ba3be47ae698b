"""Which IP address a request comes from, for geolocation (spec §8.3 step 4).

Beyond the reference: with ``TrustedProxies`` set, ``X-Forwarded-For`` is only
believed from those networks; its first element is used only when it is an IP
address (then written in its canonical form, so no raw header text reaches the
JSON, the pages or the logs), else the peer address is; and IPv6 addresses are
reported without brackets so that they can be located.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable

from attrs import frozen

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Longer than any IPv6 address with a zone worth reading: no need to parse more.
_LONGEST_ADDRESS = 100
_OCTET = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_CANONICAL_IPV4 = re.compile(rb"%s(?:\.%s){3}" % (_OCTET, _OCTET))


@frozen
class ClientAddressPolicy:
    """How to find the client's address; no networks means the header is always believed."""

    trusted: tuple[Network, ...] = ()

    @classmethod
    def from_config(cls, networks: Iterable[str]) -> ClientAddressPolicy:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def client_ip(self, peer_host: str, forwarded_for: bytes | None) -> str:
        """The address to locate: the first ``X-Forwarded-For`` element if it is an IP
        address, else the peer."""
        peer = strip_peer(peer_host)
        if forwarded_for is None or (self.trusted and not self._is_trusted(peer)):
            return peer
        return forwarded_address(forwarded_for.split(b",", 1)[0]) or peer

    def _is_trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted)


def forwarded_address(element: bytes) -> str:
    """The canonical text of the IP address an ``X-Forwarded-For`` element holds, else "".

    Spaces around it and brackets around an IPv6 address are allowed; an IPv6 zone is
    dropped (it means nothing on another host and could carry any text); an IPv4-mapped
    IPv6 address becomes IPv4, as for peers. On the request path: an IPv4 address already
    in canonical form (the usual case) is taken without parsing, and recent answers for
    other texts are remembered.
    """
    text = element.strip(b" \t")
    if _CANONICAL_IPV4.fullmatch(text):
        return text.decode("ascii")
    if len(text) > _LONGEST_ADDRESS:  # also keeps the memory of answers small
        return ""
    return _parsed_address(text)


@functools.lru_cache(maxsize=4096)
def _parsed_address(text: bytes) -> str:
    bracketed = text.startswith(b"[") and text.endswith(b"]")
    if bracketed:
        text = text[1:-1]
    if not text or not text.isascii():
        return ""
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except ValueError:
        return ""
    if bracketed and not isinstance(address, ipaddress.IPv6Address):
        return ""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.scope_id is not None:
            return str(ipaddress.IPv6Address(int(address)))
    return str(address)


def strip_peer(host: str) -> str:
    """A peer host as an address: IPv4-mapped IPv6 becomes IPv4, brackets are dropped."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.startswith("::ffff:") and "." in host:
        return host[len("::ffff:"):]
    return host
