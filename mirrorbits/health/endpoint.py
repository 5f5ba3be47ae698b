"""Where each protocol of a mirror accepts connections (the liveness probes' targets)."""

from __future__ import annotations

from urllib.parse import urlsplit

from attrs import define

from mirrorbits.health.outcome import check_urls
from mirrorbits.model import Mirror
from mirrorbits.store.events import PROTO_HTTP


@define(frozen=True)
class Endpoint:
    """Where one protocol of a mirror accepts connections."""

    proto: int
    host: str
    port: int


def endpoints(mirror: Mirror) -> list[Endpoint]:
    """The endpoints of the protocols a mirror is up on."""
    found = []
    for proto, base in check_urls(mirror.http_url):
        if not (mirror.http_up if proto == PROTO_HTTP else mirror.https_up):
            continue
        try:
            parts = urlsplit(base)
            port = parts.port or (80 if proto == PROTO_HTTP else 443)
        except ValueError:
            continue
        if parts.hostname:
            found.append(Endpoint(proto, parts.hostname, port))
    return found
