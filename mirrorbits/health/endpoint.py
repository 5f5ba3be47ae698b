"""Where each protocol of a mirror accepts connections (the liveness probes' targets)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from attrs import define
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint

from mirrorbits.health.outcome import check_urls
from mirrorbits.model import Mirror
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.store.events import PROTO_HTTP


@define(frozen=True)
class Endpoint:
    """Where one protocol of a mirror accepts connections."""

    proto: int
    host: str
    port: int


def endpoints(mirror: Mirror, down: bool = False) -> list[Endpoint]:
    """The endpoints of the protocols a mirror is up on (``down``: is down on)."""
    found = []
    for proto, base in check_urls(mirror.http_url):
        if (mirror.http_up if proto == PROTO_HTTP else mirror.https_up) == down:
            continue
        try:
            parts = urlsplit(base)
            port = parts.port or (80 if proto == PROTO_HTTP else 443)
        except ValueError:
            continue
        if parts.hostname:
            found.append(Endpoint(proto, parts.hostname, port))
    return found


def client_endpoint(reactor: IConnectingReactor, endpoint: Endpoint,
                    timeout: float) -> IStreamClientEndpoint:
    """How to connect to ``endpoint``: an address directly (``HostnameEndpoint`` reports a
    refused connection only when its next attempt would start, 300 ms later), a name
    through the resolver."""
    try:
        address = ipaddress.ip_address(endpoint.host)
    except ValueError:
        return HostnameEndpoint(reactor, endpoint.host, endpoint.port, timeout=timeout)
    if address.version == 4:
        return TCP4ClientEndpoint(reactor, endpoint.host, endpoint.port, timeout=timeout)
    return TCP6ClientEndpoint(reactor, endpoint.host, endpoint.port, timeout=timeout)
