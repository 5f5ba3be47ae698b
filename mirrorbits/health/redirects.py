"""Where a health check follows a mirror's redirect (pure rules, plus the address guard).

Difference from the reference, on purpose: the reference follows a permitted redirect
anywhere. Here a check follows a redirect only

* to the mirror's own host (any port), from ``http`` to ``https`` or keeping the scheme
  (``https`` to ``http`` is refused: the HTTPS check would be answered over HTTP);
* to another host only when ``AllowRedirectHosts`` names it (``host``, ``*.domain`` for
  its subdomains, ``*`` for any host);
* and, whatever the host's name, never to a loopback, link-local, private or otherwise
  non-public address unless the mirror itself answered from an address of that kind: the
  address is the one actually connected to (checked once connected, before anything is
  sent), so a name that resolves to an internal address is refused as well.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from attrs import define
from twisted.internet.interfaces import IAddress

from mirrorbits.hostpatterns import host_matches

__all__ = ["AddressGuard", "AddressRule", "address_kind", "redirect_problem"]

#: What a connection's peer may be: ``None`` admits it, else why it is refused.
AddressRule = Callable[[IAddress], "str | None"]

PUBLIC = "public"


def _host(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.rstrip(".").lower()


def redirect_problem(source: str, target: str, mirror_url: str,
                     other_hosts: Sequence[str]) -> str | None:
    """Why a check of ``mirror_url`` must not follow ``source`` → ``target``, or ``None``."""
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        return f"redirect to a {scheme or 'relative'} URL refused"
    if urlsplit(source).scheme.lower() == "https" and scheme == "http":
        return "redirect from HTTPS to HTTP refused"
    host = _host(target)
    if host == _host(mirror_url) or host_matches(host, other_hosts):
        return None
    return f"redirect to another host ({host}) refused: not in AllowRedirectHosts"


def address_kind(host: str) -> str:
    """``loopback``, ``link-local``, ``private`` (any other non-public range) or ``public``."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return "private"  # not an IP address (a UNIX socket...): never a public one
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if not address.is_global or address.is_multicast:
        return "private"
    return PUBLIC


@define
class AddressGuard:
    """The address rule of one check: the mirror's own connection (the first) is recorded,
    each redirected one is admitted only on a public address or one of the mirror's kind."""

    mirror_kind: str = ""

    def first(self, peer: IAddress) -> str | None:
        self.mirror_kind = address_kind(getattr(peer, "host", ""))
        return None

    def redirected(self, peer: IAddress) -> str | None:
        host = getattr(peer, "host", "")
        kind = address_kind(host)
        if kind in (PUBLIC, self.mirror_kind):
            return None
        return f"redirect to a {kind} address ({host}) refused: the mirror is not on one"
