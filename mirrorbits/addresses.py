"""Network addresses of the configuration, parsed and checked (pure).

``ListenAddress``/``RPCListenAddress`` are ``host:port``, ``:port``, ``[v6]:port`` or
``unix:/path``; ``RedisAddress`` and sentinel hosts are ``host:port`` or ``[v6]:port``.
A host is an IP address or a DNS name (resolved when used). Errors are one line for the
operator, without the key: the caller names it.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from attrs import frozen

# Letters, digits, '-' and '_' (seen in container and service names), dot-separated labels.
_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
MAX_HOSTNAME = 253


class AddressError(ValueError):
    """An address that cannot be used; ``str(err)`` says why, in one line."""


class ListenAddressError(AddressError):
    """An address that cannot be listened on, with the reason for the operator."""


@frozen
class ListenAddress:
    """A parsed ``ListenAddress``/``RPCListenAddress`` value.

    ``mode``: the permissions of a UNIX socket file (None: leave them as created).
    """

    family: socket.AddressFamily
    host: str = ""
    port: int = 0
    path: str = ""
    mode: int | None = None

    def __str__(self) -> str:
        if self.family == socket.AF_UNIX:
            return f"unix:{self.path}"
        return join_host_port(self.host, self.port)


def join_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(text: str, *, min_port: int = 1) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``[v6]:port`` → ``(host, port)``; the host may be empty.

    IPv6 addresses must be in brackets (``::1:6379`` is ambiguous).
    """
    if not text or text != text.strip():
        raise AddressError("expected host:port" if not text else "spaces around the address")
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise AddressError("expected [IPv6 address]:port")
        host, port_text = inside, rest[1:]
        if not _is_ipv6(host):
            raise AddressError(f"{host!r} is not an IPv6 address")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise AddressError("expected host:port" + (
                f" (a port alone: '127.0.0.1:{text}'?)" if text.isdigit()
                else f" (the port is missing: '{text}:PORT')"))
        if ":" in host:
            raise AddressError("an IPv6 address must be written in brackets: [address]:port")
        if host and not _is_host(host):
            raise AddressError(f"{host!r} is not an IP address or a host name")
    if not port_text.isascii() or not port_text.isdigit():
        raise AddressError(f"the port {port_text!r} is not a number")
    port = int(port_text)
    if not min_port <= port <= 65535:
        raise AddressError(f"the port must be between {min_port} and 65535, not {port}")
    return host, port


def parse_listen_address(text: str, unix_mode: int | None = None) -> ListenAddress:
    """``host:port``, ``:port``, ``[v6]:port`` or ``unix:/path``.

    ``unix_mode``: the permissions a UNIX socket file gets.
    """
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise ListenAddressError("empty UNIX socket path")
        if "\0" in path:
            raise ListenAddressError("NUL character in the UNIX socket path")
        if len(path.encode()) > 107:
            raise ListenAddressError("UNIX socket path longer than 107 bytes")
        return ListenAddress(socket.AF_UNIX, path=path, mode=unix_mode)
    if ":" not in text:
        hint = f" (':{text}' listens on every address)" if text.isdigit() else ""
        raise ListenAddressError("expected host:port or unix:/path" + hint)
    try:
        host, port = split_host_port(text, min_port=0)
    except AddressError as err:
        raise ListenAddressError(str(err)) from None
    if ":" in host:
        family = socket.AF_INET6
    elif host:
        family = socket.AF_INET
    else:
        family = socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET
    return ListenAddress(family, host=host, port=port)


def is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _is_host(host: str) -> bool:
    if _DOTTED_NUMBERS.fullmatch(host):  # 999.0.0.1 is no name: a mistyped address
        return is_ipv4(host)
    return len(host) <= MAX_HOSTNAME and bool(_HOSTNAME.fullmatch(host))
